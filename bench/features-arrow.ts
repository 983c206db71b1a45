/**
 * Issue 3: exporting a feature view's 1M current rows as an Arrow IPC file (DuckDB chunks converted
 * column-wise to Arrow, then written), against DuckDB's own `COPY (same query) TO … (FORMAT parquet)`.
 * Runs alternate; medians of three.
 */
import { join } from 'node:path';
import { DuckDBOfflineStore } from '../stores/duckdb/offline/duckdb-offline-store.js';
import { valuesAtSql } from '../stores/duckdb/offline/feature-query.js';
import { fillItemHistory, openItemStore } from './lib/features-fixture.js';
import { median } from './lib/stats.js';
import { ratioResult, type BenchResult } from './lib/types.js';

const ROWS = Number(process.env.FF_BENCH_ARROW_ROWS ?? 1_000_000);

export async function run(): Promise<BenchResult[]> {
  const store = await openItemStore();
  try {
    const c = store.log.connection;
    // Every 20th entity ends deleted: 1/0.95 as many entities leave ROWS current rows.
    await fillItemHistory(store.log, Math.ceil(ROWS / 0.95), 2);
    const features = new DuckDBOfflineStore(c);
    // The same query the export runs (each entity's newest row in the append-only base table, not a deletion).
    const record = (await features.views()).find((r) => r.name === 'items')!;
    const sql = valuesAtSql({ record, features: ['doubled', 'name'], types: new Map() }, null);
    const ours: number[] = [];
    const copy: number[] = [];
    let rows = 0;
    for (let i = 0; i < 3; i++) {
      let started = performance.now();
      rows = (await features.export({ view: 'items' }, join(store.dir, `items-${i}.arrow`))).rows;
      ours.push(performance.now() - started);
      started = performance.now();
      await c.run(`COPY (${sql}) TO '${join(store.dir, `items-${i}.parquet`)}' (FORMAT parquet)`);
      copy.push(performance.now() - started);
    }
    const rate = rows / (median(ours) / 1000);
    const reference = rows / (median(copy) / 1000);
    return [
      ratioResult(
        {
          name: `export ${(rows / 1e6).toFixed(2)}M current rows of a view → Arrow IPC file`,
          value: rate,
          unit: 'rows/s',
          reference: { name: 'DuckDB COPY (same query) TO parquet', value: reference, unit: 'rows/s' },
        },
        { atLeast: 0.3 },
      ),
    ];
  } finally {
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
