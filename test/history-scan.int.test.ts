import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, test } from 'vitest';
import * as arrow from 'apache-arrow';
import type pg from 'pg';
import { closeContainer, createContainer, TOKENS, type OfflineStore } from '../index.js';
import { entityId } from '../framework/features/entity-key.js';
import type { FeatureRow } from '../framework/features/feature-rows.js';
import {
  bool,
  entity,
  featureView,
  float32,
  float64,
  int32,
  int64,
  tensor,
  text,
  timestamp,
  type FeatureDefinitions,
} from '../framework/features/index.js';
import type { FeatureRowScan } from '../framework/interfaces/offline-store.js';
import { parsePosition } from '../framework/types.js';
import { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';
import { DuckDBOfflineStore } from '../stores/duckdb/offline/duckdb-offline-store.js';
import { pgClient, randomName, testConfig, type TestConfig } from './helpers.js';
import { prng } from './features-helpers.js';

const run = promisify(execFile);
const SCAN_CHILD = fileURLToPath(new URL('./fixtures/scan-memory-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const clients: pg.Client[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const c of clients.splice(0)) await c.end();
});

/** Runs `ingest --until-caught-up`, then hands the container's offline store (the log's connection) to `body`. */
async function ingest<T>(config: TestConfig, body?: (store: OfflineStore) => Promise<T>): Promise<T | undefined> {
  const container = await createContainer(config);
  try {
    await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    return await body?.(await container.getAsync(TOKENS.OfflineStore));
  } finally {
    await closeContainer(container);
  }
}

/** A reader of the store's file, as `featureflow export` opens it (the ingest is closed). */
async function reader(config: TestConfig, features: FeatureDefinitions): Promise<OfflineStore> {
  const store = await config.store.openReader(features);
  cleanups.push(() => store.close());
  return store;
}

/** Every batch of a scan. */
async function drain(scan: FeatureRowScan): Promise<(readonly FeatureRow[])[]> {
  const batches: (readonly FeatureRow[])[] = [];
  for await (const batch of scan.rows) batches.push(batch);
  return batches;
}

const item = entity({ name: 'item', keys: ['id'] });

/** A view with a feature of every stored type, tensors of each dtype among them. */
function itemsView(source: string) {
  return featureView({
    name: 'scanned',
    version: 1,
    entity: item,
    source,
    features: {
      price: float64,
      weight: float32,
      qty: int32,
      big: int64,
      active: bool,
      name: text,
      seen: timestamp,
      vec: tensor('float32', [2, 2]),
      counts: tensor('int32', [3]),
      wide: tensor('float64', [2]),
    },
    transform: (row) => {
      const id = row.id as number;
      const qty = row.qty as number | null;
      return {
        price: row.price === null ? null : Number(row.price),
        weight: row.weight as number | null,
        qty,
        big: row.big as bigint | null,
        active: row.active as boolean | null,
        name: row.name as string | null,
        seen: row.seen as string | null,
        vec: qty === null ? null : [id, id / 3, qty, -qty],
        counts: [id, qty ?? 0, 7],
        wide: [id / 7, (row.weight as number | null) ?? 0],
      };
    },
  });
}

const FEATURES = ['price', 'weight', 'qty', 'big', 'active', 'name', 'seen', 'vec', 'counts', 'wide'];

/** One row of an Arrow column in the stored form of feature values (bigints, µs timestamps, typed arrays). */
function cell(column: arrow.Vector, row: number): unknown {
  let at = row;
  for (const data of column.data) {
    if (at >= data.length) {
      at -= data.length;
      continue;
    }
    if (!data.getValid(at)) return null;
    const type = data.type;
    if (arrow.DataType.isFixedSizeList(type)) {
      const child = data.children[0]!;
      const size = type.listSize;
      return (child.values as Float32Array).slice((data.offset + at) * size, (data.offset + at + 1) * size);
    }
    if (arrow.DataType.isTimestamp(type) || (arrow.DataType.isInt(type) && type.bitWidth === 64))
      return (data.values as BigInt64Array)[data.offset + at];
    return arrow.makeVector(data).get(at);
  }
  throw new RangeError(`row ${row} is past the column's end`);
}

/** `latest()`'s Arrow table as (key, values, commit time) per entity. */
function latestOf(table: arrow.Table): { key: unknown[]; values: unknown[]; commitTime: bigint }[] {
  const out = [];
  for (let i = 0; i < table.numRows; i++) {
    out.push({
      key: [cell(table.getChild('id')!, i)],
      values: FEATURES.map((f) => cell(table.getChild(f)!, i)),
      commitTime: cell(table.getChild('valid_from')!, i) as bigint,
    });
  }
  return out;
}

/** Rows compared as plain data, ordered by entity. */
function byEntity<T extends { key: readonly unknown[] }>(rows: readonly T[]): T[] {
  return [...rows].sort((a, b) => (entityId(a.key as never) < entityId(b.key as never) ? -1 : 1));
}

/** Random inserts, updates and deletes over `keys` ids, a few statements per transaction. */
async function workload(
  client: pg.Client,
  table: string,
  seed: number,
  transactions: number,
  keys: number,
): Promise<void> {
  const rand = prng(seed);
  for (let t = 0; t < transactions; t++) {
    await client.query('BEGIN');
    for (let s = 0; s < 1 + Math.floor(rand() * 3); s++) {
      const id = 1 + Math.floor(rand() * keys);
      const r = rand();
      if (r < 0.45) {
        await client.query(
          `INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5, $6, $7, now() - $8 * interval '1 minute')
             ON CONFLICT (id) DO UPDATE SET price = excluded.price, qty = excluded.qty, name = excluded.name, big = excluded.big`,
          [
            id,
            (rand() * 100).toFixed(2),
            rand() * 10,
            rand() < 0.1 ? null : Math.floor(rand() * 1000),
            BigInt(Math.floor(rand() * 1e6)) * 10_000_000_000n,
            rand() < 0.5,
            `n${id}-${t}`,
            Math.floor(rand() * 100),
          ],
        );
      } else if (r < 0.85) {
        await client.query(`UPDATE ${table} SET weight = $2, active = NOT active WHERE id = $1`, [id, rand() * 10]);
      } else {
        await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }
    }
    await client.query('COMMIT');
  }
}

describe('streamed scans of the feature history (latestRows)', () => {
  test('latestRows equals latest() with exact types, in bounded batches', async () => {
    const table = randomName('scan');
    const client = await pgClient();
    clients.push(client);
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, price numeric(10,2), weight real, qty int, big int8, active bool, name text, seen timestamptz)`,
    );
    await client.query(
      `INSERT INTO ${table} SELECT g, g * 1.5, g / 4.0, g % 13, g::int8 * 3000000000, g % 2 = 0, 'n' || g, now() - g * interval '1 hour' FROM generate_series(1, 120) g`,
    );
    const features: FeatureDefinitions = { views: [itemsView(table)] };
    const config = testConfig([table], { features, ingest: { batchSize: 50 } });
    await ingest(config);
    await workload(client, table, 7, 60, 160);
    await client.query(`TRUNCATE ${table}`);
    await client.query(
      `INSERT INTO ${table} SELECT g, g, g, g, g, true, 'again' || g, now() FROM generate_series(1, 40) g`,
    );
    await workload(client, table, 8, 60, 160);

    // Through the container's store (on the log's own connection, nothing ingesting meanwhile).
    const live = await ingest(config, async (store) => {
      const scan = await store.latestRows!('scanned', { batchSize: 1000 });
      return { watermark: scan.watermark, rows: (await drain(scan)).flat() };
    });

    const store = await reader(config, features);
    const status = (await store.status()).find((s) => s.view === 'scanned')!;
    const watermark = parsePosition(status.watermark!);
    const expected = latestOf(await store.latest('scanned'));
    expect(expected.length).toBeGreaterThan(20);

    const scan = await store.latestRows!('scanned', { batchSize: 7 });
    expect(scan.watermark).toBe(watermark);
    const batches = await drain(scan);
    // Bounded batches: full ones, then what is left.
    expect(batches.slice(0, -1).every((b) => b.length === 7)).toBe(true);
    expect(batches.at(-1)!.length).toBeGreaterThan(0);
    expect(batches.at(-1)!.length).toBeLessThanOrEqual(7);
    const rows = batches.flat();
    expect(byEntity(rows.map((r) => ({ key: r.key, values: r.values, commitTime: r.commitTime })))).toEqual(
      byEntity(expected),
    );
    expect(live!.watermark).toBe(watermark);
    expect(byEntity(live!.rows)).toEqual(byEntity(rows));

    // Exact types: the stored form of every feature type.
    const sample = rows.find((r) => r.values!.every((v) => v !== null))!;
    const [price, weight, qty, big, active, name, seen, vec, counts, wide] = sample.values!;
    expect([typeof price, typeof weight, typeof qty, typeof big, typeof active, typeof name, typeof seen]).toEqual([
      'number',
      'number',
      'number',
      'bigint',
      'boolean',
      'string',
      'bigint',
    ]);
    expect(vec).toBeInstanceOf(Float32Array);
    expect(counts).toBeInstanceOf(Int32Array);
    expect(wide).toBeInstanceOf(Float64Array);
    expect(typeof sample.key[0]).toBe('number');
    expect(typeof sample.position).toBe('bigint');
    expect(sample.position).toBeLessThanOrEqual(watermark);
    for (const r of rows) {
      expect(r.values).not.toBeNull();
      expect(['r', 'c', 'u']).toContain(r.op);
    }
  });

  test('a scan reads one state while the change log commits on its own connection; breaking out of the loop releases it', async () => {
    const table = randomName('scaniso');
    const client = await pgClient();
    clients.push(client);
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, price numeric(10,2), weight real, qty int, big int8, active bool, name text, seen timestamptz)`,
    );
    await client.query(
      `INSERT INTO ${table} SELECT g, g, g, g, g, true, 'n' || g, now() FROM generate_series(1, 5000) g`,
    );
    const features: FeatureDefinitions = { views: [itemsView(table)] };
    const config = testConfig([table], { features });
    await ingest(config);

    // The ingesting process's view of the file: the log's connection, and connections of the scans' own.
    const log = new DuckDBChangeLog(config.store.config.path);
    await log.open();
    cleanups.push(() => log.close());
    const store = new DuckDBOfflineStore(() => log.connection, {
      definitions: features,
      openConnection: () => log.openConnection(),
    });
    const before = (await store.status())[0]!.watermark;

    const scan = await store.latestRows!('scanned', { batchSize: 1000 });
    const seen: FeatureRow[] = [];
    let changed = false;
    for await (const batch of scan.rows) {
      seen.push(...batch);
      if (!changed) {
        // The log commits a batch meanwhile: every entity deleted, the checkpoint moved.
        changed = true;
        const c = log.connection;
        await c.run('BEGIN');
        await c.run('UPDATE fv_scanned_v1__rows SET deleted = true');
        await c.run('UPDATE _checkpoint SET lsn = lsn + 1000 WHERE id = 1');
        await c.run('COMMIT');
      }
    }
    expect(scan.watermark).toBe(parsePosition(before!));
    expect(seen).toHaveLength(5000);
    expect((await drain(await store.latestRows!('scanned'))).flat()).toHaveLength(0);
    expect((await store.status())[0]!.watermark).not.toBe(before);

    // A scan that is never iterated is released by close().
    await (await store.latestRows!('scanned')).close();
  });

  test('200 000 entities stream in batches of 1 000 without the process holding them: RSS grows by a fixed amount, not by the rows', async () => {
    const table = randomName('scanbig');
    const client = await pgClient();
    clients.push(client);
    const entities = 200_000;
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, price numeric(10,2), name text, seen timestamptz)`);
    await client.query(
      `INSERT INTO ${table} SELECT g, g % 1000, 'name-' || g, now() - g * interval '1 second' FROM generate_series(1, ${entities}) g`,
    );
    const embedded = featureView({
      name: 'embedded',
      version: 1,
      entity: item,
      source: table,
      features: { price: float64, name: text, seen: timestamp, embedding: tensor('float32', [64]) },
      transform: (row) => ({
        price: Number(row.price),
        name: row.name as string,
        seen: row.seen as string,
        embedding: Float32Array.from({ length: 64 }, (_, i) => ((row.id as number) % (i + 2)) / (i + 2)),
      }),
    });
    const features: FeatureDefinitions = { views: [embedded] };
    const config = testConfig([table], { features });
    await ingest(config);
    // Each figure from a fresh process (the file opened as the serving process opens it), so one
    // reading's caches and garbage do not count in another's.
    const measure = async (mode: 'stream' | 'keep') => {
      const { stdout } = await run(
        process.execPath,
        ['--import', 'tsx', SCAN_CHILD, config.store.config.path, 'embedded', mode],
        { cwd: ROOT },
      );
      return JSON.parse(stdout) as { growthMb: number; rows: number; largest: number };
    };
    const streamed = await measure('stream');
    const kept = await measure('keep');
    console.log(
      `latestRows of ${entities} entities: RSS +${streamed.growthMb.toFixed(0)} MB streamed, +${kept.growthMb.toFixed(0)} MB with every row kept`,
    );
    expect(streamed).toMatchObject({ rows: entities, largest: 1000 });
    expect(kept.rows).toBe(entities);
    // What grows is DuckDB's buffer pool (capped by store.memoryLimit, 64 MB), V8's young generation
    // and a chunk in flight: a fixed amount (+125 MB here, +144 MB for 1M entities), where keeping the
    // rows adds their size.
    expect(streamed.growthMb).toBeLessThan(160);
    expect(kept.growthMb - streamed.growthMb).toBeGreaterThan(100);
  });
});
