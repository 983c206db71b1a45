import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { createPartitionedTable, pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// Tables of less common shapes, snapshotted then changed by the stream, against PostgreSQL.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

describe('tables of other shapes', () => {
  test('REPLICA IDENTITY USING INDEX (a unique index, no primary key): updates, key changes and deletes', async () => {
    const table = randomName('ri_index');
    await client.query(`CREATE TABLE ${table} (a int NOT NULL, b text, c int)`);
    await client.query(`CREATE UNIQUE INDEX ${table}_a ON ${table} (a)`);
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY USING INDEX ${table}_a`);
    await client.query(`INSERT INTO ${table} SELECT g, 'b' || g, g FROM generate_series(1, 50) g`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET b = 'x' WHERE a < 10`);
    await client.query(`UPDATE ${table} SET a = a + 1000 WHERE a > 45`);
    await client.query(`DELETE FROM ${table} WHERE a < 5`);
    await ingestUntilCaughtUp(config);
    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
  });

  test('a stored generated column is left out by snapshot and stream alike (pgoutput does not publish it)', async () => {
    const table = randomName('gen');
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED)`,
    );
    await client.query(`INSERT INTO ${table} (id, a) SELECT g, g FROM generate_series(1, 20) g`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET a = a + 1 WHERE id < 5`);
    await client.query(`INSERT INTO ${table} (id, a) VALUES (100, 7)`);
    await ingestUntilCaughtUp(config);
    const { diff, schemas, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect([...schemas.values()].map((schema) => schema.columns.map((c) => c.name))).toEqual([['id', 'a']]);
    expect(changes.filter((c) => c.op !== 'r').every((c) => c.after && !('twice' in c.after))).toBe(true);
  });

  test('schema, table and column names with capitals, spaces and quotes', async () => {
    const schema = 'Sales ' + randomName('s').slice(-6);
    const name = 'Order "Items" ' + randomName('t').slice(-6);
    const q = (s: string) => '"' + s.replaceAll('"', '""') + '"';
    await client.query(`CREATE SCHEMA ${q(schema)}`);
    await client.query(`CREATE TABLE ${q(schema)}.${q(name)} (${q('Id')} int PRIMARY KEY, ${q('the value')} text)`);
    await client.query(`INSERT INTO ${q(schema)}.${q(name)} SELECT g, 'v' || g FROM generate_series(1, 10) g`);
    const config = testConfig([`${schema}.${name}`]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${q(schema)}.${q(name)} SET ${q('the value')} = 'x' WHERE ${q('Id')} < 4`);
    await ingestUntilCaughtUp(config);
    const { diff } = await compareWithPostgres(client, config, `${schema}.${name}`);
    expect(diff).toEqual({ missing: [], extra: [] });
  });

  test('a partitioned table: rows of every partition under the parent, an update moving a row across partitions', async () => {
    const table = randomName('parted');
    await createPartitionedTable(client, table, 20);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET v = v + 1 WHERE id < 5`);
    await client.query(`UPDATE ${table} SET region = 'eu' WHERE id = 7`);
    await client.query(`DELETE FROM ${table} WHERE id = 9`);
    await ingestUntilCaughtUp(config);
    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
  });
});
