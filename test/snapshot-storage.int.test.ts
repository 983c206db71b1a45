import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { FeatureflowError } from '../framework/errors.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { snapshotStorageName, streamStorageName } from '../stores/duckdb/change-log/typed-layout.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// The snapshot is stored in typed tables and read through the `change_log` view, which prints its
// keys and rows as the stream's JSON. Keys are compared as text (replay, TOAST lookups, GROUP BY key):
// a key printed differently by the view than by the stream would leave a deleted row alive.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** Values whose JSON text is easy to get wrong: escapes, large int8, floats, timestamps out of range. */
const AWKWARD_ROWS = `
  (1, 'plain', 9007199254740993, 0.1, 1, '2024-01-01 00:00:00.5+00', '1999-12-31', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.50, true),
  (2, E'quote " back \\\\ slash \\u0001 \\u001b \\u000b tab\\t nl\\n', -9007199254740993, 1e-5, 1e21, 'infinity', 'infinity', NULL, 'NaN', false),
  (3, 'ünïcödé ✓ 😀 /slash', 9007199254740991, -0.0, 'NaN', '0044-03-15 12:00:00+00 BC', '0044-03-15 BC', NULL, -0.01, NULL),
  (4, '\\u001a literal backslash-u', 4611686018427387904, 'Infinity', 123456789012345680000, '294276-12-31 23:59:59.999999+00', '5874897-12-31', NULL, 0, true),
  (5, '', 0, 5e-324, -1.5, '1000-01-01 00:00:00+00', '1000-01-01', NULL, 99999999999999999999.99, false),
  (6, 'x', 1, 1.7976931348623157e308, 3.4e38, '9999-12-31 23:59:59.999999+00', '9999-12-31', NULL, 1, NULL)`;

describe('snapshot storage', () => {
  test('keyed by text and int8: rows snapshotted, then updated and deleted by the stream, equal PostgreSQL', async () => {
    const table = randomName('snap_keys');
    await client.query(
      `CREATE TABLE ${table} (n int, t text, big int8, f8 float8, f4 float4, ts timestamptz, d date, u uuid, num numeric, b bool,
                             PRIMARY KEY (t, big))`,
    );
    await client.query(`INSERT INTO ${table} VALUES ${AWKWARD_ROWS}`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    let { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });

    await client.query(`UPDATE ${table} SET n = n + 100 WHERE n IN (1, 2, 3)`);
    await client.query(`DELETE FROM ${table} WHERE n IN (4, 5)`);
    await ingestUntilCaughtUp(config);
    const result = await compareWithPostgres(client, config, table);
    expect(result.diff).toEqual({ missing: [], extra: [] });
    expect(result.state.size).toBe(4);
    // Every key the stream wrote matches the snapshot's key of the same row, as text.
    const keysOf = (op: string) => new Set(result.changes.filter((c) => c.op === op).map((c) => c.key));
    const snapshotKeys = keysOf('r');
    for (const key of [...keysOf('u'), ...keysOf('d')]) expect(snapshotKeys.has(key), key!).toBe(true);
    ({ diff } = result);
  });

  test('REPLICA IDENTITY FULL (every column in the key, floats too): deletes find the snapshot rows', async () => {
    const table = randomName('snap_full');
    await client.query(
      `CREATE TABLE ${table} (n int, t text, big int8, f8 float8, f4 float4, ts timestamptz, d date, u uuid, num numeric, b bool)`,
    );
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${table} VALUES ${AWKWARD_ROWS}`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(`DELETE FROM ${table} WHERE n IN (1, 2, 3, 4)`);
    await client.query(`UPDATE ${table} SET n = 50 WHERE n = 5`);
    await ingestUntilCaughtUp(config);
    const result = await compareWithPostgres(client, config, table);
    expect(result.diff).toEqual({ missing: [], extra: [] });
    expect(result.state.size).toBe(2);
  });

  test('the snapshot table has DuckDB types, overrides only where the native type cannot hold the value', async () => {
    const table = randomName('snap_typed');
    await client.query(
      `CREATE TABLE ${table} (n int PRIMARY KEY, t text, big int8, f8 float8, f4 float4, ts timestamptz, d date, u uuid, num numeric, b bool)`,
    );
    await client.query(`INSERT INTO ${table} VALUES ${AWKWARD_ROWS.replace(/'x', 1,/, "'x', 2,")}`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      const storage = `_snapshot__public.${table}`;
      const types = (
        await db.connection.runAndReadAll(
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
          [storage],
        )
      ).getRows();
      expect(types).toEqual([
        ['_ff_seq', 'BIGINT'],
        ['n', 'INTEGER'],
        ['t', 'VARCHAR'],
        ['big', 'BIGINT'],
        ['f8', 'DOUBLE'],
        ['f8__json', 'VARCHAR'],
        ['f4', 'FLOAT'],
        ['f4__json', 'VARCHAR'],
        ['ts', 'TIMESTAMP WITH TIME ZONE'],
        ['ts__json', 'VARCHAR'],
        ['d', 'DATE'],
        ['d__json', 'VARCHAR'],
        ['u', 'VARCHAR'],
        ['num', 'VARCHAR'],
        ['b', 'BOOLEAN'],
      ]);
      const rows = (
        await db.connection.runAndReadAll(`SELECT n, epoch_us(ts), ts__json, d__json FROM "${storage}" ORDER BY n`)
      ).getRows();
      // Rows 5 and 6 sit on the bounds of the native range: either layout is exact there.
      expect(rows.slice(0, 4)).toEqual([
        [1, 1704067200500000n, null, null],
        [2, null, '"infinity"', '"infinity"'],
        [3, null, '"0044-03-15T12:00:00.000000Z BC"', '"0044-03-15 BC"'],
        [4, null, '"294276-12-31T23:59:59.999999Z"', '"5874897-12-31"'],
      ]);
    } finally {
      db.close();
    }
  });

  test('text of every length, one- to four-byte characters, from the snapshot and the stream: DuckDB holds, orders and matches it as PostgreSQL does', async () => {
    const table = randomName('snap_text');
    await client.query(`CREATE TABLE ${table} (n int PRIMARY KEY, t text, doc jsonb)`);
    // Lengths around DuckDB's 12-byte inline limit, characters cut by its 4-byte prefix, long runs,
    // nulls and empty strings among them, over more rows than a DuckDB chunk (2 048).
    const rows = (from: number, to: number) => `
      INSERT INTO ${table}
      SELECT n, CASE n % 8 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN repeat('a', n % 14)
                           WHEN 3 THEN repeat('é', n % 9) WHEN 4 THEN repeat('x', 12) || n
                           WHEN 5 THEN repeat('😀', n % 6) || n WHEN 6 THEN 'ab✓' || md5(n::text)
                           ELSE md5(n::text) || repeat('z', n % 300) END,
             CASE WHEN n % 5 = 0 THEN NULL ELSE jsonb_build_object('n', n, 's', repeat('ü', n % 20)) END
        FROM generate_series(${from}, ${to}) n`;
    await client.query(rows(1, 5000));
    await client.query(`INSERT INTO ${table} VALUES (0, repeat('long ✓ ', 40000), '{"big": "${'y'.repeat(70000)}"}')`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    await client.query(rows(5001, 9000)); // one transaction: typed stream rows, several chunks
    await ingestUntilCaughtUp(config);
    const { diff, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(9001);

    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      const stored = `SELECT n, t FROM "${snapshotStorageName(`public.${table}`)}" UNION ALL SELECT n, t FROM "${streamStorageName(`public.${table}`, 1)}"`;
      // Order and equality over the stored bytes, as PostgreSQL sees them byte-wise (COLLATE "C").
      const ordered = (await db.connection.runAndReadAll(`SELECT n FROM (${stored}) ORDER BY t, n`))
        .getRows()
        .map((r) => r[0]);
      const { rows: expected } = await client.query(`SELECT n FROM ${table} ORDER BY t COLLATE "C", n`);
      expect(ordered).toEqual(expected.map((r) => r.n));
      // Equality and length, checked against PostgreSQL's values, for a value of every kind.
      const { rows: probes } = await client.query(
        `SELECT t, count(*)::int AS rows, octet_length(t) AS bytes FROM ${table}
          WHERE t IN (SELECT t FROM ${table} WHERE n IN (0, 1, 2, 3, 4, 5, 6, 7, 13, 6004, 6005, 6006, 6007, 8999)) GROUP BY t`,
      );
      expect(probes.length).toBe(14);
      for (const probe of probes) {
        const found = (
          await db.connection.runAndReadAll(
            `SELECT count(*)::INT, min(octet_length(encode(t))) FROM (${stored}) WHERE t = $1`,
            [probe.t],
          )
        ).getRows();
        expect(found, `${probe.bytes} bytes`).toEqual([[probe.rows, BigInt(probe.bytes)]]);
      }
    } finally {
      db.close();
    }
  });

  test.each([
    ['fast', ['Uncompressed']],
    ['small', ['Dictionary']],
  ] as const)(
    'store.compression %s: snapshot and stream tables are compressed that way',
    async (compression, expected) => {
      const table = randomName('snap_compress');
      await client.query(`CREATE TABLE ${table} (n int PRIMARY KEY, t text)`);
      const fill = (from: number, to: number) =>
        `INSERT INTO ${table} SELECT n, 'category-' || (n % 4) FROM generate_series(${from}, ${to}) n`;
      await client.query(fill(1, 5000));
      const config = testConfig([table], { store: { compression } });
      await ingestUntilCaughtUp(config);
      await client.query(fill(5001, 10000));
      await ingestUntilCaughtUp(config);
      const db = await openDuckDB(config.store.config.path, { readOnly: true });
      try {
        for (const storage of [snapshotStorageName(`public.${table}`), streamStorageName(`public.${table}`, 1)]) {
          const methods = (
            await db.connection.runAndReadAll(
              `SELECT DISTINCT compression FROM pragma_storage_info($1) WHERE column_name = 't' AND segment_type = 'VARCHAR'`,
              [`"${storage}"`],
            )
          ).getRows();
          expect(
            methods.map((r) => r[0]),
            storage,
          ).toEqual(expected);
        }
      } finally {
        db.close();
      }
    },
  );

  // Earlier layouts: the snapshot as JSON rows (no `storage`), then typed snapshot tables whose float
  // columns had no overrides, before the stream's typed tables (no `_stream_tables`).
  test.each([
    [
      'JSON snapshot',
      'CREATE TABLE _snapshot_tables (table_name VARCHAR PRIMARY KEY, rows BIGINT NOT NULL, done BOOLEAN NOT NULL)',
    ],
    [
      'typed snapshot, no stream tables',
      'CREATE TABLE _snapshot_tables (table_name VARCHAR PRIMARY KEY, rows BIGINT NOT NULL, done BOOLEAN NOT NULL, storage VARCHAR)',
    ],
  ])('a file in an earlier layout (%s) is refused with FF_STORE_FORMAT and left as it was', async (_layout, ddl) => {
    const config = testConfig(['unused']);
    const path = config.store.config.path;
    const old = await openDuckDB(path);
    await old.connection.run(
      `${ddl}; INSERT INTO _snapshot_tables (table_name, rows, done) VALUES ('public.t', 3, true)`,
    );
    old.close();
    const container = await createContainer(config);
    const error = await (await container.getAsync(TOKENS.ChangeLog))
      .open()
      .then(
        () => undefined,
        (e: unknown) => e,
      )
      .finally(() => closeContainer(container));
    expect(error).toBeInstanceOf(FeatureflowError);
    expect((error as FeatureflowError).code).toBe('FF_STORE_FORMAT');
    expect((error as Error).message).toMatch(/point duckdb\(\{ path \}\) at a new file/);
    const after = await openDuckDB(path, { readOnly: true });
    try {
      const tables = (
        await after.connection.runAndReadAll('SELECT table_name FROM information_schema.tables ORDER BY 1')
      ).getRows();
      expect(tables).toEqual([['_snapshot_tables']]);
    } finally {
      after.close();
    }
  });
});
