/**
 * What one small commit of streamed changes costs the ingesting process: the change log applying
 * complete batches of `FF_BENCH_SMALL_COMMIT_ROWS` changes (default 30, what 1000 txn/s brings in
 * the 30 ms between two commits on a Kafka bus), each committed as the ingest commits a group (the
 * changes appended to the log, here as the synthetic items stream's JSON rows in `_changes` where a
 * PostgreSQL source's go to typed tables; the view's history; the checkpoint's row; COMMIT),
 * against DuckDB's own floor: a commit that updates the checkpoint's row and appends nothing, in a
 * file of its own.
 * They alternate commit by commit, so that load on the machine hits both alike. CPU is the process's
 * (every thread: DuckDB runs a statement off the event loop) per commit.
 *
 * Why it matters: a bus between processes publishes after the commit, so commit → prediction pays
 * the wait for the next commit plus the commit itself; commits more often cost CPU in proportion
 * (bench/kafka.ts, `FF_BENCH_KAFKA_COMMIT_INTERVAL_MS`).
 */
import { join } from 'node:path';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { itemBatches, openItemStore } from './lib/features-fixture.js';
import { percentile } from './lib/stats.js';
import { benchResult, type BenchResult } from './lib/types.js';

const ROWS = Number(process.env.FF_BENCH_SMALL_COMMIT_ROWS ?? 30);
const COMMITS = Number(process.env.FF_BENCH_SMALL_COMMITS ?? 2000);
/** Items of the view; their snapshot is applied before measuring. */
const KEYS = 10_000;

/** Process CPU (all threads) in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function run(): Promise<BenchResult[]> {
  const store = await openItemStore();
  const floor = await openDuckDB(join(store.dir, 'reference-floor.duckdb'));
  try {
    const f = floor.connection;
    await f.run('CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, lsn UBIGINT, updated_at TIMESTAMPTZ)');
    await f.run('INSERT INTO checkpoint VALUES (1, 0, now())');
    const ours = { cpu: 0, wall: [] as number[] };
    const reference = { cpu: 0, wall: [] as number[] };
    let applied = 0;
    for (const batch of itemBatches(KEYS + COMMITS * ROWS, KEYS, ROWS)) {
      store.materializer.addSchemas(batch.schemas);
      const measured = applied >= KEYS;
      let started = performance.now();
      let cpu = cpuMs();
      await store.log.apply(batch, store.materializer.materialize(batch));
      if (measured) {
        ours.cpu += cpuMs() - cpu;
        ours.wall.push(performance.now() - started);
      }
      applied += batch.size;
      if (!measured) continue;
      started = performance.now();
      cpu = cpuMs();
      await f.run('BEGIN');
      await f.run(`UPDATE checkpoint SET lsn = ${applied}, updated_at = now() WHERE id = 1; COMMIT`);
      reference.cpu += cpuMs() - cpu;
      reference.wall.push(performance.now() - started);
    }
    const n = ours.wall.length;
    console.error(
      `[small-commits] ${n} commits of ${ROWS} changes: wall p50/p99 ${percentile(ours.wall, 50).toFixed(2)}/` +
        `${percentile(ours.wall, 99).toFixed(2)} ms; DuckDB's empty commit ${percentile(reference.wall, 50).toFixed(2)}/` +
        `${percentile(reference.wall, 99).toFixed(2)} ms`,
    );
    return [
      benchResult({
        name: `change log: CPU per commit of ${ROWS} streamed changes (the log's rows, one view's history, checkpoint)`,
        value: ours.cpu / n,
        unit: 'ms',
        reference: {
          name: "DuckDB's empty commit (BEGIN, one row updated, COMMIT)",
          value: reference.cpu / n,
          unit: 'ms',
        },
        target: '(report)',
        pass: true,
      }),
    ];
  } finally {
    floor.close();
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
