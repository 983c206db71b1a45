/**
 * Issue 2: commit → durable in the change log, per single-row transaction, at 100 and 1000
 * transactions/s, against commit → receipt of the raw replication message by a bare
 * pg-logical-replication subscriber at the same rates. Writer and subscriber are separate processes;
 * both read the machine-wide monotonic clock. With FF_BENCH_DEBUG set, every commit and receipt time
 * is written to /tmp/featureflow-bench-<table>.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { startIngestChild, type ChildSpec, type IngestChild } from './lib/child.js';
import { connect, tempDir, withCluster } from './lib/cluster.js';
import { monotonicMs, percentile } from './lib/stats.js';
import { benchResult, type BenchResult } from './lib/types.js';

const RATES = [100, 1000];
const SECONDS = Number(process.env.FF_BENCH_LATENCY_SECONDS ?? 5);
const WARMUP = 50;
const P99_TARGET_MS = 20;
/** How long the subscriber gets after the last commit before it is stopped. */
const DRAIN_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes single-row transactions at `rate`/s for `seconds`, returning each one's commit time (after COMMIT returned). */
async function pacedWrites(
  client: pg.Client,
  table: string,
  firstId: number,
  rate: number,
  seconds: number,
): Promise<number[]> {
  const n = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const committed: number[] = [];
  const start = monotonicMs();
  for (let i = 0; i < n; i++) {
    const ahead = start + i * interval - monotonicMs();
    if (ahead >= 1) await sleep(ahead);
    await client.query({
      name: `bench-insert-${table}`,
      text: `INSERT INTO ${table} (id, v) VALUES ($1, 'x')`,
      values: [firstId + i],
    });
    committed.push(monotonicMs());
  }
  return committed;
}

interface Phase {
  rate: number;
  latencies: number[];
}

/** Runs the warm-up and every rate against one subscriber, and pairs the k-th commit with the k-th receipt. */
async function measure(client: pg.Client, table: string, child: IngestChild): Promise<Phase[]> {
  try {
    return await pairUp(client, table, child);
  } finally {
    child.kill();
  }
}

async function pairUp(client: pg.Client, table: string, child: IngestChild): Promise<Phase[]> {
  await child.ready;
  const commits: number[] = [];
  const ranges: { rate: number; from: number; to: number }[] = [];
  commits.push(...(await pacedWrites(client, table, 1, 200, WARMUP / 200)));
  for (const rate of RATES) {
    await sleep(300);
    const from = commits.length;
    commits.push(...(await pacedWrites(client, table, commits.length + 1, rate, SECONDS)));
    ranges.push({ rate, from, to: commits.length });
  }
  await sleep(DRAIN_MS);
  child.stop();
  const { marks } = await child.result;
  if (process.env.FF_BENCH_DEBUG)
    writeFileSync(`/tmp/featureflow-bench-${table}.json`, JSON.stringify({ marks, commits }));
  // marks: [transactions seen so far, when]; expand to one receipt time per transaction.
  const seenAt: number[] = [];
  for (const [count, at] of marks) while (seenAt.length < count) seenAt.push(at);
  // A transaction not seen by the end of the drain counts as never (an infinite latency fails the target).
  return ranges.map(({ rate, from, to }) => ({
    rate,
    latencies: commits.slice(from, to).map((c, i) => (seenAt[from + i] ?? Infinity) - c),
  }));
}

export async function run(): Promise<BenchResult[]> {
  // Commits wait for their WAL flush (PostgreSQL's default), so a walsender sees each one at once.
  return withCluster(
    async (cluster) => {
      const client = await connect(cluster.url);
      const dir = tempDir('featureflow-bench-latency-');
      try {
        await client.query('CREATE TABLE bench_latency_raw (id int8 PRIMARY KEY, v text)');
        await client.query('CREATE TABLE bench_latency (id int8 PRIMARY KEY, v text)');
        await client.query('CREATE PUBLICATION bench_latency_raw FOR TABLE bench_latency_raw');
        await client.query(`SELECT pg_create_logical_replication_slot('bench_latency_raw', 'pgoutput')`);
        const base: Omit<ChildSpec, 'mode' | 'tables' | 'slot' | 'publication'> = { url: cluster.url };
        const reference = await measure(
          client,
          'bench_latency_raw',
          startIngestChild({
            ...base,
            mode: 'raw',
            tables: ['public.bench_latency_raw'],
            slot: 'bench_latency_raw',
            publication: 'bench_latency_raw',
          }),
        );
        const ours = await measure(
          client,
          'bench_latency',
          startIngestChild({
            ...base,
            mode: 'live',
            tables: ['public.bench_latency'],
            slot: 'bench_latency',
            publication: 'bench_latency',
            storePath: join(dir.path, 'featureflow.duckdb'),
          }),
        );
        const results: BenchResult[] = [];
        for (let i = 0; i < RATES.length; i++) {
          const rate = RATES[i]!;
          for (const p of [50, 99]) {
            const value = percentile(ours[i]!.latencies, p);
            const targeted = p === 99 && rate === 1000;
            results.push(
              benchResult({
                name: `commit → durable p${p} @ ${rate} txn/s`,
                value,
                unit: 'ms',
                reference: {
                  name: `commit → Node receipt p${p}`,
                  value: percentile(reference[i]!.latencies, p),
                  unit: 'ms',
                },
                target: targeted ? `≤ ${P99_TARGET_MS} ms` : '(report)',
                pass: targeted ? value <= P99_TARGET_MS : true,
              }),
            );
          }
        }
        return results;
      } finally {
        await client.end();
        dir.remove();
      }
    },
    { synchronous_commit: 'on' },
  );
}
