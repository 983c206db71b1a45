import { afterEach, describe, expect, test } from 'vitest';
import type { Container } from 'inversify';
import type pg from 'pg';
import { closeContainer, createContainer, openOfflineStore, TOKENS, type OfflineStore } from '../index.js';
import { entity, featureView, float32, int32, tensor, type FeatureDefinitions } from '../framework/features/index.js';
import { pgClient, randomName, testConfig, type TestConfig } from './helpers.js';
import { rowsOf } from './features-helpers.js';

const containers: Container[] = [];
const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await closeContainer(c);
  for (const c of clients.splice(0)) await c.end();
});

/** Runs `ingest --until-caught-up`, then hands the store (same connection) to `body`. */
async function ingest(config: TestConfig, body?: (store: OfflineStore) => Promise<void>): Promise<void> {
  const container = await createContainer(config);
  containers.push(container);
  try {
    await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    await body?.(await container.getAsync(TOKENS.OfflineStore));
  } finally {
    containers.splice(containers.indexOf(container), 1);
    await closeContainer(container);
  }
}

function withFeatures(config: TestConfig, features: FeatureDefinitions): TestConfig {
  return Object.freeze({ ...config, features });
}

type Scale = (bytes: Uint8Array) => Float32Array;
const by =
  (divisor: number): Scale =>
  (bytes) => {
    const out = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / divisor;
    return out;
  };

const image = entity({ name: 'image', keys: ['id'] });
const byLabel = entity({ name: 'label', keys: ['label'] });

/** The view of the issue: its transform calls a helper, so its source text is the same whatever `scale` does. */
function digits(table: string, scale: Scale, version = 1) {
  return featureView({
    name: 'digits',
    version,
    entity: image,
    source: table,
    features: { pixels: tensor('float32', [2, 2]), label: int32 },
    transform: (row) => ({
      pixels: row.pixels === null ? null : scale(row.pixels as Uint8Array),
      label: row.label as number | null,
    }),
  });
}

/** Views of every other shape the check must not mistake for a change. */
function others(table: string) {
  return [
    // Filters rows out (odd labels), and has a ttl.
    featureView({
      name: 'even',
      version: 1,
      entity: image,
      source: table,
      features: { first: float32 },
      filter: (row) => (row.label as number) % 2 === 0,
      transform: (row) => ({ first: row.pixels === null ? null : (row.pixels as Uint8Array)[0]! / 3 }),
      ttl: '1h',
    }),
    // Default transform (columns by name), with nulls in them.
    featureView({ name: 'labels', version: 1, entity: image, source: table, features: { label: int32 } }),
    // An entity that is not the table's key: many snapshot rows share one entity and one position.
    featureView({
      name: 'per_label',
      version: 1,
      entity: byLabel,
      source: table,
      features: { mean: float32 },
      transform: (row) => {
        const p = row.pixels as Uint8Array | null;
        return { mean: p === null ? null : p.reduce((a, b) => a + b, 0) / p.length / 7 };
      },
    }),
  ];
}

async function imageTable(client: pg.Client): Promise<string> {
  const table = randomName('img');
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, label int, pixels bytea)`);
  await client.query(
    `INSERT INTO ${table} SELECT g, CASE WHEN g % 11 = 0 THEN NULL ELSE g % 5 END,
            CASE WHEN g % 13 = 0 THEN NULL ELSE decode(lpad(to_hex(g * 7919 % 4294967295), 8, '0'), 'hex') END
       FROM generate_series(1, 200) g`,
  );
  return table;
}

/** Updates, deletes and inserts after the snapshot, so streamed changes are sampled too. */
async function stream(client: pg.Client, table: string): Promise<void> {
  await client.query(`UPDATE ${table} SET pixels = '\\x99999999'::bytea WHERE id % 3 = 0`);
  await client.query(`UPDATE ${table} SET label = label + 1 WHERE id % 4 = 0`);
  await client.query(`DELETE FROM ${table} WHERE id % 5 = 0`);
  await client.query('BEGIN');
  await client.query(`INSERT INTO ${table} VALUES (1001, 2, '\\x01020304'::bytea)`);
  await client.query(`UPDATE ${table} SET pixels = '\\x99020304'::bytea WHERE id = 1001`);
  await client.query('COMMIT');
  await client.query(`INSERT INTO ${table} VALUES (1002, NULL, NULL)`);
  await client.query(`INSERT INTO ${table} VALUES (1003, 4, '\\x99999999'::bytea)`);
}

describe('definition changes the source text cannot show', () => {
  test('a helper the transform calls changed: refused until the version is bumped, then v2 is built with it', async () => {
    const client = await pgClient();
    clients.push(client);
    const table = await imageTable(client);
    const config = testConfig([table], { features: { views: [digits(table, by(255))] } });
    await ingest(config);
    await stream(client, table);
    await ingest(config);

    // Same view text, helper now divides by 256: refused at start-up, naming view, feature and a key.
    const changed = withFeatures(config, { views: [digits(table, by(256))] });
    const error = await ingest(changed).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
    const message = (error as Error).message;
    expect(message).toMatch(
      /feature view digits v1 computes differently .* row of id=\d+ .*feature pixels .*version to 2/,
    );
    // The newest change (an insert) is always in the sample, and the newest difference is the one named.
    expect(message).toMatch(/row of id=1003 /);
    // Identifiers only: no feature value (153/256 = 0.59765625) reaches the message.
    expect(message).not.toMatch(/0\.\d{3}/);

    // A reader configured with the changed helper is refused too; with the old one it reads.
    const path = config.store.config.path;
    const reader = await openOfflineStore(path, { definitions: { views: [digits(table, by(256))] } });
    try {
      await expect(reader.latest('digits')).rejects.toMatchObject({ code: 'FF_FEATURE_VERSION' });
    } finally {
      reader.close();
    }
    const unchanged = await openOfflineStore(path, { definitions: { views: [digits(table, by(255))] } });
    try {
      expect((await unchanged.latest('digits')).numRows).toBeGreaterThan(0);
    } finally {
      unchanged.close();
    }

    // Bumped: accepted, and v2 holds the new helper's values for every image PostgreSQL has.
    const bumped = withFeatures(config, { views: [digits(table, by(256), 2)] });
    await ingest(bumped, async (store) => {
      const rows = rowsOf(await store.latest({ name: 'digits', version: 2 }));
      const { rows: expected } = await client.query(`SELECT id, label, pixels FROM ${table} ORDER BY id`);
      expect(rows.map((r) => [r.id, r.label, r.pixels === null ? null : [...(r.pixels as Float32Array)]])).toEqual(
        expected.map((r) => [
          r.id,
          r.label,
          r.pixels === null ? null : [...Float32Array.from(r.pixels as Buffer, (b) => b / 256)],
        ]),
      );
    });
    // And it stays accepted on the next start.
    await ingest(bumped);
  });

  test('a helper the filter calls changed: refused', async () => {
    const client = await pgClient();
    clients.push(client);
    const table = await imageTable(client);
    const view = (keep: (label: number) => boolean) =>
      featureView({
        name: 'kept',
        version: 1,
        entity: image,
        source: table,
        features: { label: int32 },
        filter: (row) => row.label !== null && keep(row.label as number),
      });
    const config = testConfig([table], { features: { views: [view((l) => l < 3)] } });
    await ingest(config);
    const error = await ingest(withFeatures(config, { views: [view((l) => l < 2)] })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
    expect((error as Error).message).toMatch(
      /feature view kept v1 .* row of id=\d+ .*the filter now decides differently/,
    );
  });

  test('unchanged definitions are accepted: deletes, nulls, ttl, tensors, filtered rows, entities that are not the key', async () => {
    const client = await pgClient();
    clients.push(client);
    const table = await imageTable(client);
    const views = () => [digits(table, by(255)), ...others(table)];
    const config = testConfig([table], { features: { views: views() } });
    await ingest(config);
    await stream(client, table);
    await ingest(withFeatures(config, { views: views() }));
    await client.query(`DELETE FROM ${table} WHERE id > 100`);
    // Fresh function objects with the same code, several starts (each samples anew).
    for (let i = 0; i < 3; i++) await ingest(withFeatures(config, { views: views() }));
    const reader = await openOfflineStore(config.store.config.path, { definitions: { views: views() } });
    try {
      for (const name of ['digits', 'even', 'labels', 'per_label']) await reader.latest(name);
    } finally {
      reader.close();
    }
  });
});
