/**
 * The reference server of bench/serve-http.ts, in a process of its own: bare Fastify (no schema, no
 * logger) on 127.0.0.1 with featureflow's two routes answering constant JSON bodies (the ones
 * featureflow answered, so both send as many bytes). `ready` carries the port; `stop` closes it.
 */
import Fastify from 'fastify';
import { fileURLToPath } from 'node:url';
import { startBenchChild, type BenchChild } from './bench-child.js';
import { emit, runChild } from './child-io.js';

export interface FastifySpec {
  /** Answer of `GET /features/:view/:key`. */
  features: unknown;
  /** Answer of `POST /predict` (whose JSON body Fastify parses, as featureflow's). */
  predict: unknown;
}

export function startFastifyChild(spec: FastifySpec): BenchChild<{ port: number }, Record<string, never>> {
  return startBenchChild(fileURLToPath(import.meta.url), spec);
}

async function main(spec: FastifySpec, stopped: Promise<void>): Promise<Record<string, never>> {
  const app = Fastify({ logger: false });
  app.get('/features/:view/:key', async () => spec.features);
  app.post('/predict', async () => spec.predict);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('Fastify listens on no TCP port');
  emit('ready', { port: address.port });
  await stopped;
  await app.close();
  return {};
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runChild(main);
