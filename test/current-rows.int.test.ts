import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeRow } from '../framework/value-json.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { diffAgainstPostgres, pgClient, randomName, readChangeLog, testConfig, type TestConfig } from './helpers.js';
import { ingestUntilCaughtUp, latestSchema } from './ingest-harness.js';

// `current_rows('schema.table')`, the documented way to rebuild a table's current rows from the log,
// against PostgreSQL itself, on the histories where a naive "latest row per key" query goes wrong.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** Has PostgreSQL compare `current_rows(table)` with the table (a multiset: duplicates count). */
async function expectCurrentRowsEqual(config: TestConfig, table: string): Promise<number> {
  const qualified = `public.${table}`;
  const { schemas } = await readChangeLog(config.store.config.path);
  const columns = latestSchema(schemas, qualified).columns;
  const db = await openDuckDB(config.store.config.path, { readOnly: true });
  let rows: string[];
  try {
    rows = (await db.connection.runAndReadAll(`SELECT row FROM current_rows('${qualified}')`))
      .getRows()
      .map((r) => r[0] as string);
  } finally {
    db.close();
  }
  const diff = await diffAgainstPostgres(
    client,
    qualified,
    rows.map((r) => decodeRow(r, columns)),
    columns,
  );
  expect(diff).toEqual({ missing: [], extra: [] });
  return rows.length;
}

describe("current_rows('schema.table') equals the table in PostgreSQL", () => {
  test('after truncates and key changes (the old keys are gone)', async () => {
    const table = randomName('cur');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 500) g`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET id = id + 1000 WHERE id <= 10`);
    await client.query(`UPDATE ${table} SET v = 'changed' WHERE id > 1000`);
    await client.query(`DELETE FROM ${table} WHERE id BETWEEN 11 AND 20`);
    await ingestUntilCaughtUp(config);
    expect(await expectCurrentRowsEqual(config, table)).toBe(490);
    await client.query(`TRUNCATE ${table}`);
    await client.query(`INSERT INTO ${table} VALUES (1, 'again'), (2, 'again')`);
    await client.query(`UPDATE ${table} SET id = 3 WHERE id = 2`);
    await ingestUntilCaughtUp(config);
    expect(await expectCurrentRowsEqual(config, table)).toBe(2);
  });

  test('REPLICA IDENTITY FULL without a key: duplicate rows keep their count through deletes and updates', async () => {
    const table = randomName('dup');
    await client.query(`CREATE TABLE ${table} (a int, b text)`);
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${table} VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, 'y')`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (2, 'y'), (3, 'z')`);
    // One copy of (1, 'x') goes, one is updated to (4, 'w'), one stays.
    await client.query(`DELETE FROM ${table} WHERE ctid = (SELECT ctid FROM ${table} WHERE a = 1 LIMIT 1)`);
    await client.query(
      `UPDATE ${table} SET a = 4, b = 'w' WHERE ctid = (SELECT ctid FROM ${table} WHERE a = 1 LIMIT 1)`,
    );
    await client.query(`UPDATE ${table} SET b = 'z2' WHERE a = 3`);
    await ingestUntilCaughtUp(config);
    expect(await expectCurrentRowsEqual(config, table)).toBe(5);
  });

  test('a table read again after ADD COLUMN … DEFAULT: the rows as read again, with the default', async () => {
    const table = randomName('def');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`DELETE FROM ${table} WHERE id <= 5`);
    await client.query(`ALTER TABLE ${table} ADD COLUMN n int DEFAULT 7`);
    await client.query(`INSERT INTO ${table} (id, v) VALUES (100, 'new')`);
    await client.query(`UPDATE ${table} SET n = 8 WHERE id = 6`);
    await ingestUntilCaughtUp(config);
    await ingestUntilCaughtUp(config);
    const { changes } = await readChangeLog(config.store.config.path);
    // The re-read happened (a truncate and reads after the ALTER).
    expect(changes.some((c) => c.op === 't')).toBe(true);
    expect(await expectCurrentRowsEqual(config, table)).toBe(46);
  });
});
