import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { FeatureflowError } from '../framework/errors.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// pgoutput sends 'u' (unchanged TOAST datum) for an out-of-line value an update did not rewrite. The
// engine fills it from the row's previous image: earlier in the same batch, or the newest one in the
// change log. A stored after-image must always carry the full value.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** 32 kB of random hex (and 16 kB of random bytes): incompressible, so TOASTed out of line. */
const BIG = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 1000))`;
const BLOB = `(SELECT decode(string_agg(md5(random()::text), ''), 'hex') FROM generate_series(1, 1000))`;

/** Checks every update's after-image against PostgreSQL; `moved` maps ids whose primary key changed later. */
async function expectFullImages(
  table: string,
  config: ReturnType<typeof testConfig>,
  moved: Record<number, number> = {},
) {
  const { diff, changes } = await compareWithPostgres(client, config, table);
  expect(diff).toEqual({ missing: [], extra: [] });
  const { rows } = await client.query(`SELECT id, big, blob FROM ${table}`);
  const truth = new Map(rows.map((r) => [r.id as number, r as { big: string; blob: Buffer }]));
  const checked = changes.filter((c) => c.op === 'u');
  expect(checked.length).toBeGreaterThan(0);
  for (const c of checked) {
    const id = c.after!.id as number;
    const expected = truth.get(moved[id] ?? id)!;
    // Compare lengths first: a failure then says what went wrong without printing 32 kB.
    expect((c.after!.big as string | null)?.length, `big of id ${c.after!.id}`).toBe(expected.big.length);
    expect(c.after!.big === expected.big, `big of id ${c.after!.id}`).toBe(true);
    expect(Buffer.from(c.after!.blob as Uint8Array).equals(expected.blob), `blob of id ${c.after!.id}`).toBe(true);
  }
  return changes;
}

describe('unchanged TOAST values are filled, never placeholders', () => {
  test('default replica identity: fill from the same batch and from the change log in later runs', async () => {
    const table = randomName('toast');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, big text, blob bytea)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0, ${BIG}, ${BLOB}), (2, 0, ${BIG}, ${BLOB})`);
    const { rows } = await client.query(`SELECT pg_column_size(big) AS s, length(big) AS l FROM ${table} WHERE id = 1`);
    // Stored out of line and not compressed (the size is the 32 kB plus the header).
    expect(rows[0].l).toBe(32_000);
    expect(rows[0].s).toBeGreaterThan(30_000);

    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    // Insert and update in one transaction (one batch), then several transactions in one run.
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (10, 0, ${BIG}, ${BLOB})`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 10`);
    await client.query('COMMIT');
    await client.query(`INSERT INTO ${table} VALUES (11, 0, ${BIG}, ${BLOB})`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 11`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 11`);
    // A snapshot row: the fill comes from its 'r' image in the log.
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
    await ingestUntilCaughtUp(config);
    await expectFullImages(table, config);

    // A later run: every fill comes from the change log (including images that were themselves filled).
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id IN (1, 10, 11)`);
    // The primary key moves and the TOASTed columns stay: the old key finds the previous image.
    await client.query(`UPDATE ${table} SET id = 20 WHERE id = 2`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 20`);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 20`);
    await client.query(`UPDATE ${table} SET id = 21, n = 5 WHERE id = 10`);
    await ingestUntilCaughtUp(config);
    const changes = await expectFullImages(table, config, { 2: 20, 10: 21 });
    expect(changes.filter((c) => c.op === 'u').length).toBe(11);
  });

  test('an UPDATE of a whole TOASTed table: every image filled, from the batch and from the log', async () => {
    // Regression: each fill scanned the batch backwards and queried the log once per row (a full scan
    // of _changes each), so this statement took seconds per thousand rows; now one lookup per batch.
    const table = randomName('toast_all');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, big text, blob bytea)`);
    await client.query(
      `INSERT INTO ${table} SELECT g, 0, (SELECT string_agg(md5(random()::text || g.g || s), '') FROM generate_series(1, 300) s), '\\x00'
         FROM generate_series(1, 1500) g`,
    );
    const config = testConfig([table], { ingest: { batchSize: 1000, heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET n = n + 1`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id % 2 = 0`);
    await ingestUntilCaughtUp(config);
    const changes = await expectFullImages(table, config);
    expect(changes.filter((c) => c.op === 'u')).toHaveLength(2250);
  });

  test('no earlier image to fill from: FF_TOAST_UNFILLED at once, not an endless reconnect loop', async () => {
    const table = randomName('toast_lost');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, big text, blob bytea)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0, ${BIG}, ${BLOB})`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1, maxBackoffSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    // A damaged log: the row's only image is gone.
    const db = await openDuckDB(config.store.config.path);
    await db.connection.run(`DELETE FROM _changes; DELETE FROM "_snapshot__public.${table}"`);
    db.close();
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
    const error = await ingestUntilCaughtUp(config).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FeatureflowError);
    expect((error as FeatureflowError).code).toBe('FF_TOAST_UNFILLED');
    expect((error as FeatureflowError).message).toMatch(
      new RegExp(`public\\.${table}.*big, blob.*REPLICA IDENTITY FULL`),
    );
  });

  test('REPLICA IDENTITY FULL without a primary key: the old image carries the value', async () => {
    const table = randomName('toast_full');
    await client.query(`CREATE TABLE ${table} (id int NOT NULL, n int NOT NULL, big text, blob bytea)`);
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0, ${BIG}, ${BLOB})`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (2, 0, ${BIG}, ${BLOB})`);
    await client.query(`UPDATE ${table} SET n = n + 1`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 2`);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET n = n + 1`);
    await client.query(`INSERT INTO ${table} VALUES (3, 0, ${BIG}, ${BLOB})`);
    await client.query(`DELETE FROM ${table} WHERE id = 3`);
    await ingestUntilCaughtUp(config);
    await expectFullImages(table, config);
  });

  test('a TOASTed primary key left unchanged: the row keeps its key, from the old key PostgreSQL sends', async () => {
    const table = randomName('toast_key');
    // 2.4 kB keys stored out of line (a b-tree entry holds up to 2.7 kB).
    await client.query(`CREATE TABLE ${table} (k text PRIMARY KEY, v int NOT NULL, big text)`);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN k SET STORAGE EXTERNAL`);
    const key = (i: string) => `(SELECT string_agg(md5(g::text || ${i}), '') FROM generate_series(1, 75) g)`;
    await client.query(`INSERT INTO ${table} SELECT ${key('i::text')}, i, NULL FROM generate_series(1, 3) i`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET v = v + 10`);
    await client.query(`UPDATE ${table} SET big = ${BIG} WHERE v = 11`);
    await client.query(`UPDATE ${table} SET v = v + 10 WHERE v = 11`);
    await ingestUntilCaughtUp(config);
    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    // Every update is keyed like the row's snapshot image.
    const snapshotKeys = new Set(changes.filter((c) => c.op === 'r').map((c) => c.key));
    const updates = changes.filter((c) => c.op === 'u');
    expect(updates).toHaveLength(5);
    for (const c of updates) expect(snapshotKeys.has(c.key), c.key!.slice(0, 40)).toBe(true);
  });
});
