/**
 * Issue 3: applying 1M changes to a feature view (transform, type checks, version rows appended,
 * previous versions closed) against DuckDB's data-chunk appender writing the same number of rows of
 * the same columns. Both commit once per batch, as exactly-once ingest does, and they alternate batch
 * by batch so that load on the machine hits both alike.
 */
import {
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  INTEGER,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBConnection,
} from '@duckdb/node-api';
import { join } from 'node:path';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { itemBatches, openItemStore } from './lib/features-fixture.js';
import { ratioResult, type BenchResult } from './lib/types.js';

const CHANGES = Number(process.env.FF_BENCH_FEATURE_CHANGES ?? 1_000_000);
const KEYS = Math.max(1, Math.floor(CHANGES / 5));
const BATCH = Number(process.env.FF_BENCH_FEATURE_BATCH ?? 10_000);
const TYPES = [INTEGER, DOUBLE, VARCHAR, TIMESTAMPTZ, TIMESTAMPTZ, UBIGINT, VARCHAR, BOOLEAN];

/** Appends `rows` rows of the history table's shape through data chunks (in a transaction of its own when `commit`). */
async function appendRaw(c: DuckDBConnection, start: number, rows: number, commit: boolean): Promise<void> {
  if (commit) await c.run('BEGIN');
  const appender = await c.createAppender('raw_rows');
  for (let s = 0; s < rows; s += 2048) {
    const m = Math.min(2048, rows - s);
    const ids = Array.from({ length: m }, (_, i) => start + s + i);
    const chunk = DuckDBDataChunk.create(TYPES, m);
    chunk.setColumns([
      ids,
      ids.map((i) => i * 0.5),
      ids.map((i) => `item ${i} v${i}`),
      ids.map((i) => new DuckDBTimestampTZValue(BigInt(i))),
      ids.map(() => null),
      ids.map((i) => BigInt(i)),
      ids.map(() => 'u'),
      ids.map(() => false),
    ]);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  if (commit) await c.run('COMMIT');
}

const RAW_DDL =
  'CREATE TABLE raw_rows (id INTEGER, doubled DOUBLE, name VARCHAR, valid_from TIMESTAMPTZ, valid_to TIMESTAMPTZ, lsn UBIGINT, op VARCHAR, deleted BOOLEAN)';

export async function run(): Promise<BenchResult[]> {
  const store = await openItemStore();
  // Each reference writes a file of its own next to the store (so no one pays for another's
  // checkpoints); the second keeps one transaction open throughout.
  const batched = await openDuckDB(join(store.dir, 'reference-batched.duckdb'));
  const single = await openDuckDB(join(store.dir, 'reference-single.duckdb'));
  try {
    const c = store.log.connection;
    await batched.connection.run(RAW_DDL);
    await single.connection.run(RAW_DDL);
    await single.connection.run('BEGIN');
    let applyMs = 0;
    let rawMs = 0;
    let singleMs = 0;
    let done = 0;
    for (const batch of itemBatches(CHANGES, KEYS, BATCH)) {
      // Ours: the batch's feature rows materialized, then written by the history tables inside the
      // transaction, as the ingest engine and the change log run them (the change log's own rows aside).
      let started = performance.now();
      await c.run('BEGIN');
      store.materializer.addSchemas(batch.schemas);
      const features = store.materializer.materialize(batch);
      await store.history.apply(c, batch.schemas, features.batches, features.deadLetters);
      await c.run('COMMIT');
      store.history.committed();
      applyMs += performance.now() - started;
      started = performance.now();
      await appendRaw(batched.connection, done, batch.size, true);
      rawMs += performance.now() - started;
      started = performance.now();
      await appendRaw(single.connection, done, batch.size, false);
      singleMs += performance.now() - started;
      done += batch.size;
    }
    const commitStarted = performance.now();
    await single.connection.run('COMMIT');
    singleMs += performance.now() - commitStarted;
    const rows = Number((await c.runAndReadAll('SELECT count(*) FROM fv_items_v1')).getRows()[0]![0]);
    const rate = CHANGES / (applyMs / 1000);
    const rawRate = CHANGES / (rawMs / 1000);
    const singleRate = CHANGES / (singleMs / 1000);
    return [
      ratioResult(
        {
          name: `apply ${CHANGES / 1e6}M changes to a feature view (${rows} version rows, ${BATCH} per batch)`,
          value: rate,
          unit: 'changes/s',
          reference: {
            name: 'DuckDB data-chunk appender, same rows, a commit per batch',
            value: rawRate,
            unit: 'rows/s',
          },
        },
        { atLeast: 0.5 },
      ),
      ratioResult(
        {
          name: `apply ${CHANGES / 1e6}M changes to a feature view (vs one transaction)`,
          value: rate,
          unit: 'changes/s',
          reference: {
            name: 'DuckDB data-chunk appender, same rows, one transaction',
            value: singleRate,
            unit: 'rows/s',
          },
        },
        { atLeast: 0.5 },
      ),
    ];
  } finally {
    single.close();
    batched.close();
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
