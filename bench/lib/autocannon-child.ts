/**
 * autocannon's programmatic API in a process of its own (started by {@link runAutocannon}), for a
 * load as that tool makes it. `overallRate` is a quota per second per connection, spent as fast as
 * the connection gets answers from the start of each second: at 2 000/s on a fast server the load
 * comes in bursts. autocannon's own percentiles are whole milliseconds (and corrected for coordinated
 * omission against a 1 ms interval), so the latency of each response is taken from its `response`
 * event instead, in fractional ms.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startBenchChild } from './bench-child.js';
import { runChild } from './child-io.js';

export interface AutocannonSpec {
  url: string;
  method: 'GET' | 'POST';
  body?: string;
  connections: number;
  overallRate: number;
  seconds: number;
  warmupSeconds: number;
}

export interface AutocannonResult {
  /** Per 2xx response of the measured run, ms. */
  latencies: number[];
  /** Non-2xx responses and errors, over both runs. */
  failures: number;
  /** Requests per second autocannon reports for the measured run. */
  averageRate: number;
}

/** Runs autocannon in a child process and resolves with its figures. */
export function runAutocannon(spec: AutocannonSpec): Promise<AutocannonResult> {
  return startBenchChild<unknown, AutocannonResult>(fileURLToPath(import.meta.url), spec).result;
}

interface Instance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
type Autocannon = (
  options: Record<string, unknown>,
  done: (error: Error | null, result: { requests: { average: number }; non2xx: number; errors: number }) => void,
) => Instance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function once(spec: AutocannonSpec, seconds: number, latencies: number[] | null) {
  return new Promise<{ requests: { average: number }; non2xx: number; errors: number }>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        method: spec.method,
        ...(spec.body !== undefined ? { body: spec.body, headers: { 'content-type': 'application/json' } } : {}),
        connections: spec.connections,
        overallRate: spec.overallRate,
        duration: seconds,
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (latencies && status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

async function main(spec: AutocannonSpec): Promise<AutocannonResult> {
  const warm = await once(spec, spec.warmupSeconds, null);
  const latencies: number[] = [];
  const measured = await once(spec, spec.seconds, latencies);
  return {
    latencies,
    failures: warm.non2xx + warm.errors + measured.non2xx + measured.errors,
    averageRate: measured.requests.average,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runChild(main);
