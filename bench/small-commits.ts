/**
 * What one small commit of streamed changes costs the ingesting process: the change log applying
 * complete batches of `FF_BENCH_SMALL_COMMIT_ROWS` changes (default 30, what 1000 txn/s brings in
 * the 30 ms between two commits on a Kafka bus), each committed as the ingest commits a group (the
 * changes appended to the log, the view's history, the checkpoint's row, COMMIT), against DuckDB's
 * own floor: a commit that updates the checkpoint's row and appends nothing, in a file of its own.
 * Two streams: single-row inserts into a table of points (`id int4`, `x`, `y float8`, one view of
 * the two, as the serving benchmarks stream them), column-wise as the PostgreSQL source hands them
 * out and stored in the log's typed tables; and the synthetic items stream of the feature
 * benchmarks (updates, deletes, inserts), as Change objects, stored as the log's JSON rows. Each
 * commit alternates with the reference's, so that load on the machine hits both alike. CPU is the
 * process's (every thread: DuckDB runs a statement off the event loop) per commit.
 */
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { entity, featureView, float32 } from '../framework/features/index.js';
import type { ChangeBatch, RowGroup, TableSchema } from '../framework/types.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { itemBatches, openItemStore, openViewStore, T0, type ViewStore } from './lib/features-fixture.js';
import { percentile } from './lib/stats.js';
import { benchResult, type BenchResult } from './lib/types.js';

const ROWS = Number(process.env.FF_BENCH_SMALL_COMMIT_ROWS ?? 30);
const COMMITS = Number(process.env.FF_BENCH_SMALL_COMMITS ?? 2000);
/** Items of the items view; their snapshot is applied before measuring. */
const KEYS = 10_000;

const POINTS: TableSchema & { version: number } = {
  table: 'public.points',
  version: 1,
  keyColumns: ['id'],
  columns: [
    { name: 'id', type: 'int4', array: false, typeOid: 23, key: true },
    { name: 'x', type: 'float8', array: false, typeOid: 701, key: false },
    { name: 'y', type: 'float8', array: false, typeOid: 701, key: false },
  ],
};

const pointsView = featureView({
  name: 'points',
  version: 1,
  entity: entity({ name: 'point', keys: ['id'] }),
  source: POINTS.table,
  features: { x: float32, y: float32 },
});

/** `commits` complete batches of `rows` single-row inserts into the points table, column-wise, as the PostgreSQL source hands them out. */
function* pointBatches(commits: number, rows: number): Generator<ChangeBatch> {
  for (let k = 0; k < commits; k++) {
    const id = new Int32Array(rows);
    const x = new Float64Array(rows);
    const y = new Float64Array(rows);
    const positions = new BigUint64Array(rows);
    const commitTimes = new BigInt64Array(rows);
    const xids = new Uint32Array(rows * 2);
    for (let i = 0; i < rows; i++) {
      const n = k * rows + i;
      id[i] = n + 1;
      x[i] = Math.sin(n);
      y[i] = Math.cos(n);
      positions[i] = 2000n + BigInt(n) * 16n;
      commitTimes[i] = T0 + BigInt(n) * 1000n;
      xids[i * 2] = n + 1;
    }
    const fixed = (kind: 'int32' | 'float64', data: ArrayBufferView) => ({
      kind,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      nulls: undefined,
      overrides: undefined,
    });
    const group: RowGroup = {
      table: POINTS.table,
      schemaVersion: 1,
      rows: { length: rows, columns: [fixed('int32', id), fixed('float64', x), fixed('float64', y)] },
      indexes: Int32Array.from({ length: rows }, (_, i) => i),
      ops: new Uint8Array(rows).fill('c'.charCodeAt(0)),
      positions,
      commitPositions: positions,
      commitTimes,
      xids,
    };
    yield {
      groups: [group],
      changes: [],
      changeIndexes: [],
      size: rows,
      complete: true,
      checkpoint: positions[rows - 1]!,
      schemas: [],
    };
  }
}

/** Process CPU (all threads) in ms. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Costs {
  cpu: number;
  readonly wall: number[];
}

/** One commit of DuckDB's floor: the checkpoint's row updated, nothing appended. */
async function emptyCommit(f: DuckDBConnection, lsn: number, into: Costs): Promise<void> {
  const started = performance.now();
  const cpu = cpuMs();
  await f.run('BEGIN');
  await f.run(`UPDATE checkpoint SET lsn = ${lsn}, updated_at = now() WHERE id = 1; COMMIT`);
  into.cpu += cpuMs() - cpu;
  into.wall.push(performance.now() - started);
}

/** Applies `batches` to `store` one commit each, alternating with DuckDB's empty commit; the first `skip` changes unmeasured. */
async function measure(store: ViewStore, batches: Iterable<ChangeBatch>, skip: number) {
  let floor: Awaited<ReturnType<typeof openDuckDB>> | undefined;
  try {
    floor = await openDuckDB(join(store.dir, 'reference-floor.duckdb'));
    const f = floor.connection;
    await f.run('CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, lsn UBIGINT, updated_at TIMESTAMPTZ)');
    await f.run('INSERT INTO checkpoint VALUES (1, 0, now())');
    const ours: Costs = { cpu: 0, wall: [] };
    const reference: Costs = { cpu: 0, wall: [] };
    let applied = 0;
    for (const batch of batches) {
      store.materializer.addSchemas(batch.schemas);
      const measured = applied >= skip;
      const started = performance.now();
      const cpu = cpuMs();
      await store.log.apply(batch, store.materializer.materialize(batch));
      applied += batch.size;
      if (!measured) continue;
      ours.cpu += cpuMs() - cpu;
      ours.wall.push(performance.now() - started);
      await emptyCommit(f, applied, reference);
    }
    return { ours, reference };
  } finally {
    floor?.close();
    await store.close();
  }
}

function result(what: string, { ours, reference }: { ours: Costs; reference: Costs }): BenchResult {
  const n = ours.wall.length;
  const p = (w: number[]) => `${percentile(w, 50).toFixed(2)}/${percentile(w, 99).toFixed(2)}`;
  console.error(
    `[small-commits] ${what}: ${n} commits of ${ROWS} changes, wall p50/p99 ${p(ours.wall)} ms; ` +
      `DuckDB's empty commit ${p(reference.wall)} ms`,
  );
  return benchResult({
    name: `change log: CPU per commit of ${ROWS} streamed changes, ${what} (the log's rows, one view's history, checkpoint)`,
    value: ours.cpu / n,
    unit: 'ms',
    reference: { name: "DuckDB's empty commit (BEGIN, one row updated, COMMIT)", value: reference.cpu / n, unit: 'ms' },
    target: '(report)',
    pass: true,
  });
}

export async function run(): Promise<BenchResult[]> {
  // A warm-up of a tenth as many commits, unmeasured.
  const warm = Math.ceil(COMMITS / 10);
  const points = await measure(
    await openViewStore(pointsView, POINTS),
    pointBatches(COMMITS + warm, ROWS),
    warm * ROWS,
  );
  const items = await measure(await openItemStore(), itemBatches(KEYS + COMMITS * ROWS, KEYS, ROWS), KEYS);
  return [result('single-row inserts, typed', points), result('items stream, JSON rows', items)];
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
