import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// Every kind of change pgoutput sends: inserts, updates (also of the primary key), deletes and
// truncates, for a keyed table and for a REPLICA IDENTITY FULL table without a primary key.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

async function expectEqual(config: ReturnType<typeof testConfig>, table: string) {
  const result = await compareWithPostgres(client, config, table);
  expect(result.diff, `state of ${table}`).toEqual({ missing: [], extra: [] });
  return result;
}

describe('operations', () => {
  test('TRUNCATE logs op t, empties the state, and rows inserted afterwards follow', async () => {
    const a = randomName('trunc_a');
    const b = randomName('trunc_b');
    await client.query(`CREATE TABLE ${a} (id int PRIMARY KEY, v text)`);
    await client.query(`CREATE TABLE ${b} (id int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${a} SELECT g, 'a' || g FROM generate_series(1, 50) g`);
    await client.query(`INSERT INTO ${b} SELECT g, 'b' || g FROM generate_series(1, 50) g`);
    const config = testConfig([a, b], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    await client.query(`UPDATE ${a} SET v = 'changed' WHERE id <= 10`);
    await client.query(`TRUNCATE ${a}`);
    await ingestUntilCaughtUp(config);
    const emptied = await expectEqual(config, a);
    expect(emptied.state.size).toBe(0);
    expect(emptied.changes.filter((c) => c.op === 't' && c.table === `public.${a}`)).toHaveLength(1);
    await expectEqual(config, b);

    await client.query(`INSERT INTO ${a} SELECT g, 'again' || g FROM generate_series(5, 30) g`);
    // Two tables in one statement, then new rows in the same transaction.
    await client.query('BEGIN');
    await client.query(`TRUNCATE ${a}, ${b}`);
    await client.query(`INSERT INTO ${a} SELECT g, 'third' || g FROM generate_series(1, 7) g`);
    await client.query(`INSERT INTO ${b} VALUES (1, 'one')`);
    await client.query('COMMIT');
    await client.query(`UPDATE ${a} SET v = 'after' WHERE id = 3`);
    await ingestUntilCaughtUp(config);
    const { state, changes } = await expectEqual(config, a);
    expect(state.size).toBe(7);
    expect(
      changes
        .filter((c) => c.op === 't')
        .map((c) => c.table)
        .sort(),
    ).toEqual([`public.${a}`, `public.${a}`, `public.${b}`].sort());
    await expectEqual(config, b);
  });

  test('primary-key updates move the row; deletes remove it (composite key keeps its index order)', async () => {
    const table = randomName('pkmove');
    await client.query(
      `CREATE TABLE ${table} (id int NOT NULL, region text NOT NULL, v text, PRIMARY KEY (region, id))`,
    );
    await client.query(`INSERT INTO ${table} SELECT g, 'eu', 'v' || g FROM generate_series(1, 40) g`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    await client.query(`UPDATE ${table} SET id = id + 1000 WHERE id <= 5`);
    await client.query(`UPDATE ${table} SET region = 'us' WHERE id BETWEEN 6 AND 8`);
    await client.query(`DELETE FROM ${table} WHERE id BETWEEN 9 AND 12`);
    // Into a key deleted earlier, and back to a key that moved away in the same transaction.
    await client.query(`UPDATE ${table} SET id = 9, v = 'moved in' WHERE id = 13`);
    await client.query('BEGIN');
    await client.query(`UPDATE ${table} SET id = 2001 WHERE id = 14`);
    await client.query(`INSERT INTO ${table} VALUES (14, 'eu', 'new 14')`);
    await client.query(`UPDATE ${table} SET id = 15 WHERE id = 2001 AND false`);
    await client.query('COMMIT');
    // Swap two keys through a free one.
    await client.query('BEGIN');
    await client.query(`UPDATE ${table} SET id = -1 WHERE id = 20`);
    await client.query(`UPDATE ${table} SET id = 20 WHERE id = 21`);
    await client.query(`UPDATE ${table} SET id = 21 WHERE id = -1`);
    await client.query('COMMIT');
    await client.query(`DELETE FROM ${table} WHERE id = 1001`);
    await ingestUntilCaughtUp(config);
    const { state, changes, schemas } = await expectEqual(config, table);
    expect(state.size).toBe(36);
    // pgoutput flags key columns in table order (id, region); the key stays (region, id): one version.
    expect([...schemas.values()].map((s) => s.keyColumns)).toEqual([['region', 'id']]);
    expect(changes.filter((c) => c.op === 'd')).toHaveLength(5);
    // A moved row's change carries its old key in `before` and its new key in `key`.
    const move = changes.find((c) => c.op === 'u' && c.after?.id === 1001)!;
    expect(JSON.parse(move.key!)).toEqual({ region: 'eu', id: 1001 });
    expect(move.before).toEqual({ region: 'eu', id: 1 });
  });

  test('a partitioned table: snapshot and changes of every partition arrive under the parent', async () => {
    const table = randomName('parted');
    await client.query(
      `CREATE TABLE ${table} (id int NOT NULL, region text NOT NULL, v text, PRIMARY KEY (region, id)) PARTITION BY LIST (region)`,
    );
    await client.query(`CREATE TABLE ${table}_eu PARTITION OF ${table} FOR VALUES IN ('eu')`);
    await client.query(`CREATE TABLE ${table}_us PARTITION OF ${table} FOR VALUES IN ('us')`);
    await client.query(
      `INSERT INTO ${table} SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g FROM generate_series(1, 40) g`,
    );
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (100, 'eu', 'new'), (101, 'us', 'new')`);
    await client.query(`UPDATE ${table} SET v = 'changed' WHERE id <= 10`);
    await client.query(`DELETE FROM ${table} WHERE id BETWEEN 11 AND 14`);
    // Moving a row to another partition is a delete and an insert for pgoutput.
    await client.query(`UPDATE ${table} SET region = 'us' WHERE id = 20`);
    await ingestUntilCaughtUp(config);
    const { state, changes } = await expectEqual(config, table);
    expect(state.size).toBe(38);
    expect(new Set(changes.map((c) => c.table))).toEqual(new Set([`public.${table}`]));
  });

  test('a table and columns whose names need quoting', async () => {
    const schema = randomName('Sch ema');
    const table = `${schema}.Odd "Name" ${randomName('T')}`;
    const quoted = `"${schema}"."${table.slice(schema.length + 1).replaceAll('"', '""')}"`;
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE ${quoted} ("Id" int PRIMARY KEY, "select" text, "a.b" int)`);
    await client.query(`INSERT INTO ${quoted} SELECT g, 'v' || g, g FROM generate_series(1, 10) g`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${quoted} SET "select" = 'changed', "a.b" = -1 WHERE "Id" <= 3`);
    await client.query(`DELETE FROM ${quoted} WHERE "Id" = 10`);
    await client.query(`INSERT INTO ${quoted} VALUES (11, 'new', 11)`);
    await ingestUntilCaughtUp(config);
    const { state } = await expectEqual(config, table);
    expect(state.size).toBe(10);
  });

  test('REPLICA IDENTITY FULL without a primary key: updates and deletes are keyed by the old row', async () => {
    const table = randomName('full');
    await client.query(`CREATE TABLE ${table} (k text NOT NULL, n int NOT NULL, note text, amount numeric)`);
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(
      `INSERT INTO ${table} SELECT 'k' || g, g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note' END, g / 3.0 FROM generate_series(1, 30) g`,
    );
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    await client.query(`UPDATE ${table} SET n = n * 10 WHERE n <= 10`);
    await client.query(`UPDATE ${table} SET note = 'was null' WHERE note IS NULL AND n > 20`);
    await client.query(`DELETE FROM ${table} WHERE n IN (11, 12, 100)`);
    await client.query(`INSERT INTO ${table} VALUES ('new', 1, NULL, NULL)`);
    await client.query(`UPDATE ${table} SET amount = 1.5 WHERE k = 'new'`);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET k = k || '!' WHERE n BETWEEN 20 AND 25`);
    await client.query(`DELETE FROM ${table} WHERE k = 'new'`);
    await ingestUntilCaughtUp(config);
    const { state, changes } = await expectEqual(config, table);
    expect(state.size).toBe(27);
    const deleted = changes.filter((c) => c.op === 'd');
    expect(deleted).toHaveLength(4);
    // The old image is complete under FULL.
    for (const d of deleted) expect(Object.keys(d.before!).sort()).toEqual(['amount', 'k', 'n', 'note']);
  });
});
