/**
 * Issue 3: a point-in-time training set, 1M-row spine (Parquet) × 1M-version history → Parquet,
 * against DuckDB's bare ASOF JOIN of the same spine and history rows (the view's append-only base
 * table) written to Parquet the same way (no deletion/ttl handling, no spine order). Runs
 * alternate; medians of three.
 */
import { join } from 'node:path';
import { DuckDBOfflineStore } from '../stores/duckdb/offline/duckdb-offline-store.js';
import { T0, fillItemHistory, openItemStore } from './lib/features-fixture.js';
import { median } from './lib/stats.js';
import { ratioResult, type BenchResult } from './lib/types.js';

const SPINE = Number(process.env.FF_BENCH_SPINE_ROWS ?? 1_000_000);
const VERSIONS = Number(process.env.FF_BENCH_HISTORY_ROWS ?? 1_000_000);
const PER_ENTITY = 10;

export async function run(): Promise<BenchResult[]> {
  const store = await openItemStore();
  try {
    const c = store.log.connection;
    const entities = Math.ceil(VERSIONS / PER_ENTITY);
    await fillItemHistory(store.log, entities, PER_ENTITY);
    const spine = join(store.dir, 'spine.parquet');
    // Keys include 5% unknown entities; times span the history and an hour either side.
    await c.run(`COPY (SELECT (hash(range, 1) % ${Math.ceil(entities * 1.05)})::INTEGER + 1 AS id,
                              make_timestamptz(${T0}::BIGINT - 3600000000 + (hash(range, 2) % ${(PER_ENTITY + 2) * 3_600_000_000})::BIGINT) AS event_timestamp,
                              (range % 10)::INTEGER AS label
                         FROM range(${SPINE})) TO '${spine}' (FORMAT parquet)`);
    const features = new DuckDBOfflineStore(c);
    const ours: number[] = [];
    const bare: number[] = [];
    let rows = 0;
    for (let i = 0; i < 3; i++) {
      let started = performance.now();
      const result = await features.export(
        { trainingSet: { spine, features: ['items'] } },
        join(store.dir, `train-${i}.parquet`),
      );
      ours.push(performance.now() - started);
      rows = result.rows;
      started = performance.now();
      await c.run(`COPY (SELECT s.*, f.doubled, f.name FROM read_parquet('${spine}') s
                          ASOF LEFT JOIN fv_items_v1__rows f ON s.id = f.id AND s.event_timestamp >= f.valid_from)
                   TO '${join(store.dir, `bare-${i}.parquet`)}' (FORMAT parquet)`);
      bare.push(performance.now() - started);
    }
    if (rows !== SPINE) throw new Error(`the training set has ${rows} rows, expected ${SPINE}`);
    const seconds = median(ours) / 1000;
    const reference = median(bare) / 1000;
    return [
      ratioResult(
        {
          name: `training set ${SPINE / 1e6}M spine × ${VERSIONS / 1e6}M versions → Parquet`,
          value: seconds,
          unit: 's',
          reference: { name: 'bare DuckDB ASOF JOIN → Parquet', value: reference, unit: 's' },
        },
        { atMost: 3 },
      ),
    ];
  } finally {
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
