/**
 * Issue 12: `POST /predict` by key and `GET /features/:view/:key` of `featureflow serve` (its own
 * process: memory online store loaded with 10k entities, a small TF.js dense net) under a load from
 * another process on loopback at a fixed 2 000 requests/s: p50 and p99. The reference, in the same
 * run under the same load: bare Fastify in a process of its own answering the same routes with
 * constant JSON bodies (the bytes featureflow answered), so the ratio is featureflow's own cost.
 *
 * Two loads, each run against featureflow and then the reference, both with the target on p99:
 * an open-loop paced one ({@link ./lib/paced-load-child.ts}: each request leaves when due, not when
 * the one before was answered, so a server slower than the rate shows as queueing), and autocannon,
 * whose `overallRate` is a per-second quota each connection spends as fast as it is answered from
 * the start of each second (bursts of 10 concurrent requests rather than an even 2 000/s). The rate
 * answered is in each figure's name: below 2 000/s, the server (or the machine) did not keep up.
 */
import { join } from 'node:path';
import { runAutocannon } from './lib/autocannon-child.js';
import { connect, tempDir, withCluster } from './lib/cluster.js';
import { startFastifyChild } from './lib/fastify-child.js';
import { runPacedLoad, type PacedLoadResult } from './lib/paced-load-child.js';
import { startServeChild } from './lib/serve-child.js';
import { pointsTableDdl, trainModel, VIEW } from './lib/serve-fixture.js';
import { percentile } from './lib/stats.js';
import { benchResult, type BenchResult } from './lib/types.js';

const RATE = 2000;
const SECONDS = Number(process.env.FF_BENCH_HTTP_SECONDS ?? 5);
const WARMUP_SECONDS = 1;
const AUTOCANNON_SECONDS = Number(process.env.FF_BENCH_HTTP_AUTOCANNON_SECONDS ?? 3);
const AUTOCANNON_CONNECTIONS = 10;
const ENTITIES = 10_000;
/** Keys the requests cycle through. */
const KEYS = 1000;
const P99_TARGET_MS = 5;

interface Route {
  readonly label: string;
  /** Raw requests (any key), for a server on `port`. */
  readonly requests: (port: number) => string[];
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
}

const keys = Array.from({ length: KEYS }, (_, i) => 1 + ((i * 7919) % ENTITIES));

const ROUTES: readonly Route[] = [
  {
    label: `GET /features/${VIEW}/:key`,
    method: 'GET',
    path: `/features/${VIEW}/1`,
    requests: (port) =>
      keys.map(
        (k) => `GET /features/${VIEW}/${k} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: application/json\r\n\r\n`,
      ),
  },
  {
    label: 'POST /predict by key',
    method: 'POST',
    path: '/predict',
    body: JSON.stringify({ keys: [[1]] }),
    requests: (port) =>
      keys.map((k) => {
        const body = JSON.stringify({ keys: [[k]] });
        return (
          `POST /predict HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
        );
      }),
  },
];

function checkStatuses(what: string, result: PacedLoadResult): void {
  const other = Object.entries(result.statuses).filter(([code]) => code !== '200');
  if (other.length > 0) throw new Error(`${what} answered ${other.map(([c, n]) => `${n}× ${c}`).join(', ')}`);
}

const fmt = (ms: number) => ms.toFixed(2);

/** Our percentile `p` next to the bare server's under the same load; the target bounds p99. */
function latencyResult(
  name: string,
  p: number,
  ours: { latencies: number[] },
  bare: { latencies: number[] },
): BenchResult {
  const value = percentile(ours.latencies, p);
  return benchResult({
    name,
    value,
    unit: 'ms',
    reference: { name: `bare Fastify, constant JSON p${p}`, value: percentile(bare.latencies, p), unit: 'ms' },
    target: p === 99 ? `≤ ${P99_TARGET_MS} ms` : '(report)',
    pass: p === 99 ? value <= P99_TARGET_MS : true,
  });
}

export async function run(): Promise<BenchResult[]> {
  const dir = tempDir('featureflow-bench-serve-http-');
  try {
    const modelDir = join(dir.path, 'model');
    await trainModel(modelDir);
    return await withCluster(async (cluster) => {
      const client = await connect(cluster.url);
      try {
        await client.query(pointsTableDdl('bench_http'));
        await client.query(
          `INSERT INTO bench_http SELECT g, sin(g) / 2, cos(g) / 2 FROM generate_series(1, ${ENTITIES}) g`,
        );
      } finally {
        await client.end();
      }
      const server = startServeChild({
        url: cluster.url,
        table: 'public.bench_http',
        slot: 'bench_http',
        modelDir,
        storePath: join(dir.path, 'featureflow.duckdb'),
      });
      try {
        const { url } = await server.ready;
        const port = Number(new URL(url).port);
        // The reference answers with featureflow's own bodies.
        const answers: unknown[] = [];
        for (const route of ROUTES) {
          const res = await fetch(url + route.path, {
            method: route.method,
            ...(route.body ? { body: route.body, headers: { 'content-type': 'application/json' } } : {}),
          });
          if (res.status !== 200) throw new Error(`${route.label} answered ${res.status}: ${await res.text()}`);
          answers.push(await res.json());
        }
        const reference = startFastifyChild({ features: answers[0], predict: answers[1] });
        try {
          const { port: referencePort } = await reference.ready;
          const results: BenchResult[] = [];
          for (const route of ROUTES) {
            const paced = async (target: number) => {
              const result = await runPacedLoad({
                port: target,
                rate: RATE,
                seconds: SECONDS,
                warmupSeconds: WARMUP_SECONDS,
                requests: route.requests(target),
              });
              checkStatuses(`${route.label} on port ${target}`, result);
              console.error(
                `[serve-http] ${target === port ? 'featureflow' : 'bare Fastify'} ${route.label}: ` +
                  `${result.answeredRate.toFixed(0)} req/s answered, ${result.connections} connections, ` +
                  `p50/p99/max ${fmt(percentile(result.latencies, 50))}/${fmt(percentile(result.latencies, 99))}/` +
                  `${fmt(Math.max(...result.latencies))} ms; sent late p99 ${fmt(percentile(result.lateness, 99))} ms`,
              );
              return result;
            };
            const ours = await paced(port);
            const bare = await paced(referencePort);
            for (const p of [50, 99])
              results.push(
                latencyResult(
                  `${route.label} p${p}, paced ${RATE} req/s (${ours.answeredRate.toFixed(0)} req/s answered)`,
                  p,
                  ours,
                  bare,
                ),
              );
          }
          // The same routes under autocannon's per-second quota, for comparison with its usual figures.
          for (const route of ROUTES) {
            const load = (target: number) =>
              runAutocannon({
                url: `http://127.0.0.1:${target}${route.path}`,
                method: route.method,
                ...(route.body ? { body: route.body } : {}),
                connections: AUTOCANNON_CONNECTIONS,
                overallRate: RATE,
                seconds: AUTOCANNON_SECONDS,
                warmupSeconds: WARMUP_SECONDS,
              });
            const ours = await load(port);
            const bare = await load(referencePort);
            if (ours.failures + bare.failures > 0)
              throw new Error(`autocannon saw ${ours.failures + bare.failures} failed requests on ${route.label}`);
            const what = `${route.label} p%, autocannon -c ${AUTOCANNON_CONNECTIONS} -R ${RATE} (${ours.averageRate.toFixed(0)} req/s done)`;
            for (const p of [50, 99]) results.push(latencyResult(what.replace('%', String(p)), p, ours, bare));
          }
          reference.stop();
          await reference.result;
          server.stop();
          const usage = await server.result;
          console.error(
            `[serve-http] serve process: ${(usage.cpuMs / 1000).toFixed(1)} s CPU, peak RSS ${(usage.peakRss / 2 ** 20).toFixed(0)} MB`,
          );
          return results;
        } finally {
          reference.kill();
        }
      } finally {
        server.kill();
      }
    });
  } finally {
    dir.remove();
  }
}
