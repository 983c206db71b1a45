import { afterEach, describe, expect, test } from 'vitest';
import type { Container } from 'inversify';
import type pg from 'pg';
import { closeContainer, createContainer, TOKENS, type OfflineStore } from '../index.js';
import {
  bool,
  entity,
  featureView,
  float64,
  int32,
  text,
  timestamp,
  type FeatureDefinitions,
} from '../framework/features/index.js';
import { pgClient, randomName, testConfig, type TestConfig } from './helpers.js';
import { prng, rowsOf } from './features-helpers.js';

const containers: Container[] = [];
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await closeContainer(c);
  for (const c of clients.splice(0)) await c.end();
});

/** Runs `ingest --until-caught-up` with `features`, then hands the store (same connection) to `body`. */
async function ingest<T>(config: TestConfig, body?: (store: OfflineStore) => Promise<T>): Promise<T | undefined> {
  const container = await createContainer(config);
  containers.push(container);
  try {
    await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    return await body?.(await container.getAsync(TOKENS.OfflineStore));
  } finally {
    containers.splice(containers.indexOf(container), 1);
    await closeContainer(container);
  }
}

/** The same log (file, slot, publication) with other feature definitions; still a resolved config. */
function withFeatures(config: TestConfig, features: FeatureDefinitions): TestConfig {
  return Object.freeze({ ...config, features });
}

const customer = entity({ name: 'customer', keys: ['id'] });
const profile = (table: string, version = 1, scale = 1) =>
  featureView({
    name: 'profile',
    version,
    entity: customer,
    source: table,
    features: { balance: float64, active: bool, signed_up: timestamp, name: text },
    transform:
      scale === 1
        ? (row) => ({
            balance: row.balance === null ? null : Number(row.balance),
            active: row.active as boolean | null,
            signed_up: row.signed_up as string | null,
            name: row.name as string | null,
          })
        : (row) => ({
            balance: row.balance === null ? null : Number(row.balance) * 100,
            active: row.active as boolean | null,
            signed_up: row.signed_up as string | null,
            name: row.name as string | null,
          }),
  });

/** PostgreSQL's rows as the view's features: the oracle. */
async function pgRows(client: pg.Client, table: string, scale = 1): Promise<unknown[][]> {
  const { rows } = await client.query(
    `SELECT id, balance::float8 * ${scale} AS balance, active, (extract(epoch FROM signed_up) * 1000)::float8 AS ms, name FROM ${table} ORDER BY id`,
  );
  return rows.map((r) => [r.id, r.balance, r.active, r.ms, r.name]);
}

function viewRows(rows: Record<string, unknown>[]): unknown[][] {
  return rows.map((r) => [r.id, r.balance, r.active, r.signed_up, r.name]);
}

/** Random inserts, updates, deletes over `keys` ids, in transactions of a few statements. */
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
      if (r < 0.4) {
        await client.query(
          `INSERT INTO ${table} VALUES ($1, $2, $3, $4, date_trunc('milliseconds', now() - $5 * interval '1 hour'))
           ON CONFLICT (id) DO UPDATE SET balance = excluded.balance, name = excluded.name`,
          [id, `c${id}-${t}`, (rand() * 2000 - 1000).toFixed(2), rand() < 0.5, Math.floor(rand() * 1000)],
        );
      } else if (r < 0.8) {
        await client.query(
          `UPDATE ${table} SET balance = $2, active = NOT active, name = CASE WHEN $3 THEN NULL ELSE name END WHERE id = $1`,
          [id, (rand() * 2000 - 1000).toFixed(2), rand() < 0.1],
        );
      } else {
        await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }
    }
    await client.query('COMMIT');
  }
}

describe('feature views over a real PostgreSQL stream', () => {
  test('latest equals SELECT * in PostgreSQL; as of T equals the table as it was at T', async () => {
    const table = randomName('cust');
    const client = await pgClient();
    clients.push(client);
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, name text, balance numeric(12,2), active boolean, signed_up timestamptz)`,
    );
    await client.query(
      `INSERT INTO ${table} SELECT g, 'c' || g, (g % 100) - 50.25, g % 2 = 0, date_trunc('milliseconds', now() - g * interval '1 minute') FROM generate_series(1, 300) g`,
    );
    const features: FeatureDefinitions = { views: [profile(table)] };
    const config = testConfig([table], { features, ingest: { batchSize: 97 } });
    await ingest(config);

    await workload(client, table, 1, 150, 400);
    // Microseconds: commits of the last millisecond must stay on the right side of T.
    const t1 = BigInt(
      (await client.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8::text AS t`)).rows[0].t,
    );
    const atT1 = await pgRows(client, table);
    await workload(client, table, 2, 150, 400);
    await client.query(`DELETE FROM ${table} WHERE id % 17 = 0`);

    await ingest(config, async (store) => {
      expect(viewRows(rowsOf(await store.latest('profile')))).toEqual(await pgRows(client, table));
      expect(viewRows(rowsOf(await store.asOf('profile', t1)))).toEqual(atT1);
      const status = (await store.status()).find((s) => s.view === 'profile')!;
      expect(status).toMatchObject({ active: true, deadLetters: 0, entities: (await pgRows(client, table)).length });
      expect(status.watermark).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    });
  });

  test('a column added with a default: the view follows the table read again; a new version reading the column has it on every row', async () => {
    const table = randomName('tiers');
    const client = await pgClient();
    clients.push(client);
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, balance numeric(12,2))`);
    await client.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 50) g`);
    const tiers = (version: number) =>
      featureView({
        name: 'tiers',
        version,
        entity: customer,
        source: table,
        features: version === 1 ? { balance: float64 } : { balance: float64, tier: int32 },
        transform:
          version === 1
            ? (row) => ({ balance: row.balance === null ? null : Number(row.balance) })
            : (row) => ({
                balance: row.balance === null ? null : Number(row.balance),
                tier: row.tier as number | null,
              }),
      });
    const config = testConfig([table], { features: { views: [tiers(1)] } });
    await ingest(config);
    const pgTiers = async () =>
      (await client.query(`SELECT id, balance::float8 AS balance, tier FROM ${table} ORDER BY id`)).rows;
    const before = (await client.query(`SELECT id, balance::float8 AS balance FROM ${table} ORDER BY id`)).rows.map(
      (r) => [r.id, r.balance],
    );
    const t1 = BigInt(
      (await client.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8::text AS t`)).rows[0].t,
    );
    await client.query(`ALTER TABLE ${table} ADD COLUMN tier int DEFAULT 3`);
    await client.query(`UPDATE ${table} SET tier = 5, balance = 0 WHERE id = 1`);
    await client.query(`DELETE FROM ${table} WHERE id = 2`);
    await ingest(config, async (store) => {
      expect(rowsOf(await store.latest('tiers')).map((r) => [r.id, r.balance])).toEqual(
        (await pgTiers()).map((r) => [r.id, r.balance]),
      );
      expect(rowsOf(await store.asOf('tiers', t1)).map((r) => [r.id, r.balance])).toEqual(before);
    });
    // Version 2 reads the new column: built from the log, every row has its default (or its value).
    const bumped = withFeatures(config, { views: [tiers(1), tiers(2)] });
    await ingest(bumped, async (store) => {
      const current = rowsOf(await store.latest({ name: 'tiers', version: 2 })).map((r) => [r.id, r.balance, r.tier]);
      expect(current).toEqual((await pgTiers()).map((r) => [r.id, r.balance, r.tier]));
      expect(current.filter(([, , tier]) => tier === 3)).toHaveLength(48);
    });
  });

  test('a definition change needs a version bump; the new version is built from the log and matches a fresh ingest', async () => {
    const table = randomName('cust');
    const client = await pgClient();
    clients.push(client);
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, name text, balance numeric(12,2), active boolean, signed_up timestamptz)`,
    );
    await client.query(
      `INSERT INTO ${table} SELECT g, 'c' || g, g, true, date_trunc('milliseconds', now()) FROM generate_series(1, 100) g`,
    );
    const config = testConfig([table], { features: { views: [profile(table)] } });
    await ingest(config);
    await workload(client, table, 3, 60, 150);

    // Same name and version, different transform: refused at the first batch, nothing applied.
    const unbumped = withFeatures(config, { views: [profile(table, 1, 100)] });
    const error = await ingest(unbumped).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
    expect((error as Error).message).toMatch(
      /profile v1 changed since its table fv_profile_v1 was built: transform changed .* Bump its version to 2/,
    );

    // Bumped: v2 is built from the change log; v1 stays current and readable.
    const bumped = withFeatures(config, { views: [profile(table), profile(table, 2, 100)] });
    const expected = await pgRows(client, table, 100);
    let rebuilt: unknown[][] = [];
    await ingest(bumped, async (store) => {
      rebuilt = viewRows(rowsOf(await store.latest({ name: 'profile', version: 2 })));
      expect(rebuilt).toEqual(expected);
      expect(viewRows(rowsOf(await store.latest({ name: 'profile', version: 1 })))).toEqual(
        await pgRows(client, table),
      );
      const versions = (await store.status()).map((v) => [v.view, v.version, v.active]);
      expect(versions).toEqual([
        ['profile', 1, true],
        ['profile', 2, true],
      ]);
    });

    // A fresh ingest (new slot, new store) of v2 gives the same current rows.
    const fresh = testConfig([table], { features: { views: [profile(table, 2, 100)] } });
    await ingest(fresh, async (store) => {
      expect(viewRows(rowsOf(await store.latest('profile')))).toEqual(rebuilt);
    });
  });
});
