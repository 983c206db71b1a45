import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { changesOf } from '../framework/changes-of.js';
import { rowReader } from '../framework/column-values.js';
import { FeatureflowError } from '../framework/errors.js';
import type { Change, ColumnSchema, Row, Value, VersionedSchema } from '../framework/types.js';
import { rowEncoder } from '../framework/value-json.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { CopyBinaryParser } from '../sources/postgres/copy-binary-parser.js';
import { decoderFor } from '../sources/postgres/pg-binary.js';
import { SnapshotColumnsBuilder } from '../sources/postgres/snapshot-columns.js';
import { encodeKey } from '../stores/duckdb/change-log/log-keys.js';
import { snapshotStorageName, streamStorageName } from '../stores/duckdb/change-log/typed-layout.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { duckdbColumnTypes, pgClient, randomName, testConfig, type TestConfig } from './helpers.js';
import { afterEachApply, compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// bytea, arrays, interval, time, timetz and json travel column-wise (bytes and offsets, a list's elements
// in their own layout, fixed-width words) into BLOB, LIST, INTERVAL, TIME, TIMETZ and JSON columns; values a
// native column cannot hold exactly (arrays of more dimensions, a float's -0 or a date DuckDB cannot
// hold inside an array) are JSON overrides. PostgreSQL is the oracle for the rebuilt state; the JSON
// path (`rowEncoder`, `encodeKey`) is the oracle, byte for byte, for what the `change_log` view prints.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

const MOOD = randomName('mood');

/** Columns besides `id` (SQL type per name); `%MOOD%` is an enum. */
const COLUMNS: Readonly<Record<string, string>> = {
  by: 'bytea',
  tm: 'time',
  tmtz: 'timetz',
  iv: 'interval',
  js: 'json',
  jb: 'jsonb',
  a_i2: 'int2[]',
  a_i4: 'int4[]',
  a_i8: 'int8[]',
  a_oid: 'oid[]',
  a_f4: 'float4[]',
  a_f8: 'float8[]',
  a_b: 'bool[]',
  a_num: 'numeric[]',
  a_t: 'text[]',
  a_bp: 'char(3)[]',
  a_by: 'bytea[]',
  a_d: 'date[]',
  a_ts: 'timestamp[]',
  a_tstz: 'timestamptz[]',
  a_tm: 'time[]',
  a_tmtz: 'timetz[]',
  a_iv: 'interval[]',
  a_u: 'uuid[]',
  a_js: 'json[]',
  a_jb: 'jsonb[]',
  a_mood: '%MOOD%[]',
};
const NAMES = Object.keys(COLUMNS);
const FLOAT_COLUMNS = new Set(['a_f4', 'a_f8']);

/** Rows by column name (SQL literals); absent columns are NULL. */
const ROWS: Record<string, string>[] = [
  // Empty values: empty bytea, empty arrays, zero interval, midnight.
  Object.fromEntries([
    ...NAMES.map((n) => [n, `'{}'`]),
    ['by', `'\\x'`],
    ['tm', `'00:00:00'`],
    ['tmtz', `'00:00:00+00'`],
    ['iv', `'0 seconds'`],
    ['js', `'""'`],
    ['jb', `'{}'`],
  ]),
  // Edges and NULLs inside arrays.
  {
    by: `'\\x00ff10ab'`,
    tm: `'24:00:00'`,
    tmtz: `'24:00:00-15:59'`,
    iv: `'1 year 2 mons 3 days 04:05:06.5'`,
    js: `' { "a" :  [1, 2.50 ,"é \\u00e9 𝄞"] } '`,
    jb: `'{"b": 1,  "a": [1, 2.50, "x"], "u": "\\u00e9 𝄞"}'`,
    a_i2: `'{-32768,32767,NULL}'`,
    a_i4: `'{NULL}'`,
    a_i8: `'{9007199254740993,-9223372036854775808,NULL,9223372036854775807}'`,
    a_oid: `'{0,4294967295,NULL}'`,
    a_f4: `'{NaN,Infinity,-Infinity,1.1,3.4028235e38,1e-45,NULL}'`,
    a_f8: `'{NaN,Infinity,-Infinity,0.1,5e-324,1.7976931348623157e308,NULL}'`,
    a_b: `'{true,false,NULL}'`,
    a_num: `'{NaN,Infinity,-Infinity,0.000000000000000000001,-1.50,NULL}'`,
    a_t: `E'{"a b","c\\\\"d","e\\\\\\\\f",NULL,"","NULL","{x}","é ✓ 𝄞","tab\\tnl\\nbell\\u0007"}'`,
    a_bp: `'{ab,"",NULL}'`,
    a_by: `'{"\\\\x00ff",NULL,"\\\\x"}'`,
    a_d: `'{2024-02-29,1000-01-01,9999-12-31,NULL}'`,
    a_ts: `'{"2024-01-02 03:04:05.123456","1970-01-01 00:00:00",NULL}'`,
    a_tstz: `'{"2024-01-02 03:04:05.123456+05:30","1969-12-31 23:59:59.999999+00",NULL}'`,
    a_tm: `'{"12:00:00.000001","24:00:00",NULL}'`,
    a_tmtz: `'{"12:00:00+05:45","12:00:00+01:02:03","12:00:00.5-00:00:01",NULL}'`,
    a_iv: `'{"1 year 2 mons 3 days 04:05:06.5","-1 days +02:00:00",NULL,"P-1Y-2M3DT-4H-5M-6.000007S","1 mon -30 days"}'`,
    a_u: `'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'`,
    a_js: `ARRAY[' {"k": [1, 2]} '::json, 'null'::json, NULL, '"é"'::json]`,
    a_jb: `'{"{\\"k\\": [1, 2]}",null,NULL}'`,
    a_mood: `'{sad,happy,NULL}'`,
  },
  // Values a native column cannot hold (overrides): 2-D and 3-D arrays, -0, infinities and dates out of range.
  {
    by: `decode(repeat('00ab', 300), 'hex')`,
    tm: `'23:59:59.999999'`,
    tmtz: `'00:00:00+15:59'`,
    iv: `'-178000000 years'`,
    js: `'[1, 2,   3]'`,
    jb: `'null'`,
    a_i2: `'{{1,2},{3,4}}'`,
    a_i4: `'{{{1},{2}},{{3},{NULL}}}'`,
    a_i8: `'{{1}}'`,
    a_f4: `'{1,-0}'`,
    a_f8: `'{-0}'`,
    a_t: `'{{a,b},{NULL,d}}'`,
    a_d: `'{2024-01-01,infinity,"0044-03-15 BC"}'`,
    a_ts: `'{"294276-12-31 23:59:59.999999"}'`,
    a_tstz: `'{-infinity}'`,
    a_iv: `'{{"1 day"},{"2 days"}}'`,
    a_by: `'{{"\\\\x01"},{"\\\\x02"}}'`,
  },
  // More edges: negative parts, huge hours, BC-free, large TOASTed bytea.
  {
    by: `(SELECT decode(string_agg(md5(g::text), ''), 'hex') FROM generate_series(1, 6000) g)`,
    tm: `'00:00:00.000001'`,
    tmtz: `'12:34:56.789012+05:30'`,
    iv: `'-1 days +02:00:00.000001'`,
    js: `'"just a string"'`,
    jb: `'"\\u0001 é"'`,
    a_i4: `'{1,NULL,3}'`,
    a_f8: `'{0,1e-300,-2.5}'`,
    a_t: `'{""}'`,
    a_iv: `'{"2562047787:59:59","-2562047787:59:59.999999","178000000 years -1 microseconds"}'`,
    a_tm: `'{"00:00:00"}'`,
    a_by: `ARRAY[(SELECT decode(string_agg(md5((-g)::text), ''), 'hex') FROM generate_series(1, 3000) g)]`,
  },
  {
    iv: `'-2562047787:59:59.999999'`,
    tm: `'12:34:56.789'`,
    tmtz: `'12:00:00-08'`,
    a_iv: `'{"0 seconds","-0.5 seconds","13 months","-13 months","1 week","59 minutes 59.999999 seconds"}'`,
  },
  {
    iv: `'2562047787:59:59'`,
    tmtz: `'12:00:00+01:02:03'`,
  },
  { iv: `'1 mon -30 days'`, tmtz: `'12:00:00.5-00:00:01'` },
  { iv: `'-0.5 seconds'`, tmtz: `'23:59:59.999999-15:59'` },
  // Every column NULL.
  {},
];

async function createTable(table: string, key = 'id int4 PRIMARY KEY'): Promise<void> {
  await client.query(
    `DO $$ BEGIN CREATE TYPE ${MOOD} AS ENUM ('sad', 'ok', 'happy'); EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
  );
  const columns = NAMES.map((n) => `${n} ${COLUMNS[n]!.replace('%MOOD%', MOOD)}`).join(', ');
  await client.query(`CREATE TABLE ${table} (${key}, ${columns})`);
}

async function insertRows(table: string, firstId: number): Promise<void> {
  for (const [i, row] of ROWS.entries()) {
    const names = Object.keys(row);
    await client.query(
      `INSERT INTO ${table} (id${names.map((n) => `, ${n}`).join('')}) VALUES (${firstId + i}${names.map((n) => `, ${row[n]!}`).join('')})`,
    );
  }
}

/** The JSON members of a flat JSON object text, by name (the raw text of each value). */
function members(json: string): Map<string, string> {
  const parsed = JSON.parse(json) as Record<string, unknown>;
  const out = new Map<string, string>();
  // Values are found by printing each one back: the test needs their raw texts, in order.
  let rest = json.slice(1, -1);
  for (const name of Object.keys(parsed)) {
    const prefix = `${JSON.stringify(name)}:`;
    if (!rest.startsWith(prefix)) throw new Error(`unexpected member order at ${rest.slice(0, 40)}`);
    rest = rest.slice(prefix.length);
    let end = 0;
    for (let depth = 0, inString = false; end < rest.length; end++) {
      const ch = rest[end];
      if (inString) {
        if (ch === '\\') end++;
        else if (ch === '"') inString = false;
      } else if (ch === '"') inString = true;
      else if (ch === '[' || ch === '{') depth++;
      else if (ch === ']' || ch === '}') depth--;
      else if (ch === ',' && depth === 0) break;
    }
    out.set(name, rest.slice(0, end));
    rest = rest.slice(end + 1);
  }
  return out;
}

/** Float arrays may be printed differently by DuckDB: equal when every element is the same number. */
function sameFloats(a: string, b: string): boolean {
  const x = JSON.parse(a) as unknown;
  const y = JSON.parse(b) as unknown;
  if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return JSON.stringify(x) === JSON.stringify(y);
  const num = (v: unknown) => (typeof v === 'string' ? Number(v) : v);
  return x.every((v, i) => Object.is(num(v), num(y[i])));
}

/**
 * Runs ingest until caught up, collecting every change of every applied batch as the framework reads
 * it from the batch's columns (`changesOf`, the reader feature materialization uses).
 */
async function ingestCapturing(config: TestConfig, captured: Change[]): Promise<void> {
  const container = await createContainer(config);
  try {
    const schemas = new Map<string, VersionedSchema>();
    afterEachApply(container, async (batch, log) => {
      if (schemas.size === 0) for (const s of await log.schemas()) schemas.set(`${s.table}#${s.version}`, s);
      for (const s of batch.schemas) schemas.set(`${s.table}#${s.version}`, s);
      captured.push(...changesOf(batch, (table, version) => schemas.get(`${table}#${version}`)));
    });
    await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
  } finally {
    await closeContainer(container);
  }
}

/** Rows of the change log: seq order, with their schema. */
async function logged(config: TestConfig, table: string) {
  const db = await openDuckDB(config.store.config.path, { readOnly: true });
  try {
    const schemas = new Map<number, { columns: ColumnSchema[]; keyColumns: string[] }>(
      (
        (
          await db.connection.runAndReadAll(
            'SELECT version, columns, key_columns FROM _schemas WHERE table_name = $1',
            [table],
          )
        ).getRows() as [number, string, string][]
      ).map(([v, c, k]) => [v, { columns: JSON.parse(c), keyColumns: JSON.parse(k) }]),
    );
    const rows = (
      await db.connection.runAndReadAll(
        'SELECT op, key, after, schema_version FROM change_log WHERE table_name = $1 ORDER BY seq',
        [table],
      )
    ).getRows() as [string, string | null, string | null, number][];
    return rows.map(([op, key, after, version]) => ({ op, key, after, schema: schemas.get(version)! }));
  } finally {
    db.close();
  }
}

/**
 * Compares what the view prints for each logged change with the JSON path's text of the change the
 * framework read from the batch: keys and rows byte for byte (float arrays: the same numbers).
 */
function viewMismatches(logs: Awaited<ReturnType<typeof logged>>, captured: readonly Change[]): string[] {
  expect(logs.length).toBe(captured.length);
  const out: string[] = [];
  logs.forEach(({ op, key, after, schema }, i) => {
    const change = captured[i]!;
    expect(change.op).toBe(op);
    const expectedKey = encodeKey(change.key, schema.keyColumns);
    if (key !== expectedKey) out.push(`#${i} ${op}: key ${key} ≠ ${expectedKey}`);
    if (change.after === null || after === null) {
      if (change.after !== after) out.push(`#${i} ${op}: after ${after} ≠ ${change.after}`);
      return;
    }
    const want = members(rowEncoder(schema.columns)(change.after));
    const got = members(after);
    expect([...got.keys()]).toEqual([...want.keys()]);
    for (const [name, text] of want) {
      const view = got.get(name)!;
      if (view === text || (FLOAT_COLUMNS.has(name) && sameFloats(view, text))) continue;
      out.push(`#${i} ${op} ${name}: view ${view.slice(0, 200)} ≠ JSON path ${text.slice(0, 200)}`);
    }
  });
  return out;
}

describe('bytea, arrays, interval, time and timetz in native DuckDB columns', () => {
  test('through snapshot and stream: state equals PostgreSQL, the view prints the JSON path byte for byte, both paths read alike', async () => {
    const table = randomName('native');
    const qualified = `public.${table}`;
    await createTable(table);
    await insertRows(table, 1);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    const captured: Change[] = [];
    await ingestCapturing(config, captured);

    // The stream: the same rows again (inserts), updates to other rows' values, deletes.
    await insertRows(table, 101);
    await client.query(`INSERT INTO ${table} SELECT id + 200, ${NAMES.join(', ')} FROM ${table} WHERE id < 100`);
    await client.query(
      `UPDATE ${table} t SET (${NAMES}) = (SELECT ${NAMES} FROM ${table} WHERE id = 2) WHERE t.id = 201`,
    );
    await client.query(
      `UPDATE ${table} t SET (${NAMES}) = (SELECT ${NAMES} FROM ${table} WHERE id = 3) WHERE t.id = 202`,
    );
    await client.query(
      `UPDATE ${table} SET iv = iv + interval '1 day', tm = tm - interval '1 microsecond' WHERE id = 207`,
    );
    await client.query(`DELETE FROM ${table} WHERE id IN (203, 204)`);
    await ingestCapturing(config, captured);

    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(viewMismatches(await logged(config, qualified), captured)).toEqual([]);

    // The snapshot (1…), the stream's inserts (101…, 201…) decode alike, from the batch and from the view.
    const byId = (op: string, from: Change[] | typeof changes) =>
      new Map(from.filter((c) => c.op === op).map((c) => [Number(c.after!.id), c.after!]));
    const withoutId = ({ id: _id, ...rest }: Row) => rest;
    for (const source of [captured, changes]) {
      const reads = byId('r', source);
      const inserts = byId('c', source);
      expect(reads.size).toBe(ROWS.length);
      for (const [id, row] of reads) {
        expect(withoutId(inserts.get(id + 100)!)).toEqual(withoutId(row));
        expect(withoutId(inserts.get(id + 200)!)).toEqual(withoutId(row));
      }
    }
    expect(byId('r', changes)).toEqual(byId('r', captured));

    // Exact JavaScript forms, spot-checked.
    const reads = byId('r', captured);
    const [empty, edges, overridden] = [reads.get(1), reads.get(2), reads.get(3)];
    expect(empty!.by).toEqual(Buffer.alloc(0));
    expect(empty!.a_i4).toEqual([]);
    expect(empty!.iv).toBe('PT0S');
    expect(empty!.tm).toBe('00:00:00.000000');
    expect(Buffer.from(edges!.by as Uint8Array).toString('hex')).toBe('00ff10ab');
    expect(edges!.tm).toBe('24:00:00.000000');
    expect(edges!.tmtz).toBe('24:00:00.000000-15:59');
    expect(edges!.iv).toBe('P1Y2M3DT4H5M6.5S');
    expect(edges!.js).toBe(' { "a" :  [1, 2.50 ,"é \\u00e9 𝄞"] } ');
    expect(edges!.a_i8).toEqual([9007199254740993n, -9223372036854775808n, null, 9223372036854775807n]);
    expect(edges!.a_by).toEqual([Buffer.from([0, 255]), null, Buffer.alloc(0)]);
    expect(edges!.a_tmtz).toEqual([
      '12:00:00.000000+05:45',
      '12:00:00.000000+01:02:03',
      '12:00:00.500000-00:00:01',
      null,
    ]);
    expect(edges!.a_iv).toEqual(['P1Y2M3DT4H5M6.5S', 'P-1DT2H', null, 'P-1Y-2M3DT-4H-5M-6.000007S', 'P1M-30D']);
    expect(overridden!.a_i4).toEqual([
      [[1], [2]],
      [[3], [null]],
    ]);
    expect(Object.is((overridden!.a_f8 as Value[])[0], -0)).toBe(true);
    expect(overridden!.a_d).toEqual(['2024-01-01', 'infinity', '0044-03-15 BC']);
    expect(overridden!.iv).toBe('P-178000000Y');

    // Native DuckDB columns; overrides only where a row needs one.
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      for (const storage of [snapshotStorageName(qualified), streamStorageName(qualified, 1)]) {
        const types = await duckdbColumnTypes(db.connection, storage);
        expect(types.get('by')).toBe('BLOB');
        expect(types.get('tm')).toBe('TIME');
        expect(types.get('tmtz')).toBe('TIME WITH TIME ZONE');
        expect(types.get('iv')).toBe('INTERVAL');
        expect(types.get('js')).toBe('JSON');
        expect(types.get('jb')).toBe('JSON');
        expect(types.get('a_js')).toBe('JSON[]');
        expect(types.get('a_jb')).toBe('JSON[]');
        expect(types.get('a_i4')).toBe('INTEGER[]');
        expect(types.get('a_by')).toBe('BLOB[]');
        expect(types.get('a_iv')).toBe('INTERVAL[]');
        expect(types.get('a_tmtz')).toBe('TIME WITH TIME ZONE[]');
        expect(types.get('a_num')).toBe('VARCHAR[]');
        expect(types.get('a_i4__json')).toBe('VARCHAR');
        expect(types.has('by__json')).toBe(false);
      }
      const overrides = (
        await db.connection.runAndReadAll(
          `SELECT _ff_seq, a_i4__json, a_f4__json, a_d__json, a_tm FROM "${snapshotStorageName(qualified)}" ORDER BY _ff_seq`,
        )
      ).getRows();
      expect(overrides.map((r) => r.slice(1, 4))).toEqual([
        [null, null, null],
        [null, null, null],
        ['[[[1],[2]],[[3],[null]]]', '[1,-0]', '["2024-01-01","infinity","0044-03-15 BC"]'],
        ...ROWS.slice(3).map(() => [null, null, null]),
      ]);
    } finally {
      db.close();
    }
  });

  test('keys of these types: updates and deletes find their rows; REPLICA IDENTITY FULL with float arrays', async () => {
    const keyed = randomName('native_keys');
    await client.query(
      `CREATE TABLE ${keyed} (by bytea, tm time, iv interval, a int4[], tmtz timetz, n int, PRIMARY KEY (by, tm, iv, a, tmtz))`,
    );
    const full = randomName('native_full');
    await client.query(`CREATE TABLE ${full} (by bytea, iv interval, a_f8 float8[], a_t text[], n int)`);
    await client.query(`ALTER TABLE ${full} REPLICA IDENTITY FULL`);
    const fill = (from: number, to: number) => [
      `INSERT INTO ${keyed} SELECT decode(lpad(to_hex(g), 8, '0'), 'hex'), make_time(g % 24, g % 60, g / 7.0),
         make_interval(0, g, 0, -g, g, 0, g / 3.0), ARRAY[g, NULL, -g], ('12:00:00+' || lpad((g % 15)::text, 2, '0') || ':' || lpad((g % 60)::text, 2, '0'))::timetz, g
         FROM generate_series(${from}, ${to}) g`,
      `INSERT INTO ${full} SELECT decode(lpad(to_hex(g), 8, '0'), 'hex'), make_interval(0, 0, 0, 0, 0, 0, -g / 3.0),
         ARRAY[g / 3.0::float8, '-0'::float8, 'NaN'::float8], ARRAY['k' || g, NULL], g FROM generate_series(${from}, ${to}) g`,
    ];
    for (const sql of fill(1, 40)) await client.query(sql);
    const config = testConfig([keyed, full], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    for (const sql of fill(41, 60)) await client.query(sql);
    for (const t of [keyed, full]) {
      await client.query(`UPDATE ${t} SET n = -n WHERE n % 3 = 0`);
      await client.query(`DELETE FROM ${t} WHERE n % 5 = 0`);
    }
    // A key change: its old key comes with it.
    await client.query(`UPDATE ${keyed} SET a = a || 7 WHERE n % 7 = 1`);
    await ingestUntilCaughtUp(config);
    for (const t of [keyed, full]) {
      const { diff, state } = await compareWithPostgres(client, config, t);
      expect(diff).toEqual({ missing: [], extra: [] });
      expect(state.size).toBe(48);
    }
  });

  test('huge TOASTed bytea and arrays: snapshot, stream, and updates leaving them unchanged are filled from the typed tables', async () => {
    const table = randomName('native_toast');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int, pic bytea, a int8[], iv interval[])`);
    const big = `(SELECT decode(string_agg(md5(random()::text), ''), 'hex') FROM generate_series(1, 20000))`;
    const arr = `ARRAY(SELECT g::int8 * 1000003 FROM generate_series(1, 20000) g)`;
    await client.query(`INSERT INTO ${table} VALUES (1, 0, ${big}, ${arr}, '{"1 day"}'), (2, 0, ${big}, NULL, NULL)`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (3, 0, ${big}, ${arr}, '{"-1 mon",NULL}')`);
    await client.query(`UPDATE ${table} SET n = n + 1`);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id <> 2`);
    await client.query(`UPDATE ${table} SET pic = ${big} WHERE id = 2`);
    await ingestUntilCaughtUp(config);
    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const updates = changes.filter((c) => c.op === 'u');
    expect(updates.length).toBe(6);
    for (const u of updates) expect((u.after!.pic as Uint8Array).length).toBe(320_000);
  });

  test('more rows than a DuckDB chunk, arrays of every length: nulls and overrides stay on their rows', async () => {
    const table = randomName('native_chunks');
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, a int4[], t text[], by bytea[], f float8[], iv interval)`,
    );
    const fill = (from: number, to: number) =>
      client.query(
        `INSERT INTO ${table} SELECT g,
           CASE WHEN g % 13 = 0 THEN NULL WHEN g % 7 = 0 THEN ARRAY[[g, g], [NULL, g]] ELSE
             ARRAY(SELECT CASE WHEN (g + k) % 5 = 0 THEN NULL ELSE g * k END FROM generate_series(1, g % 9) k) END,
           ARRAY(SELECT repeat(chr(65 + k), (g + k) % 20) FROM generate_series(1, g % 4) k),
           ARRAY(SELECT CASE WHEN k = 2 THEN NULL ELSE decode(repeat(lpad(to_hex(g % 256), 2, '0'), k * 5), 'hex') END FROM generate_series(1, g % 3) k),
           CASE WHEN g % 11 = 0 THEN ARRAY[-0.0::float8] ELSE ARRAY[g / 7.0] END,
           CASE WHEN g % 17 = 0 THEN NULL ELSE make_interval(0, g % 13, 0, -g, 0, 0, g / 1000.0) END
           FROM generate_series(${from}, ${to}) g`,
      );
    await fill(1, 5000);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await fill(5001, 10000);
    await ingestUntilCaughtUp(config);
    const { diff, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(10_000);
  });

  test('the column-wise reader gives what the binary decoders give, for random intervals, times and arrays', async () => {
    const sql = `SELECT
        make_interval(0, (random() * 400 - 200)::int, 0, (random() * 60 - 30)::int, (random() * 10000 - 5000)::int,
                      (random() * 120 - 60)::int, round((random() * 120 - 60)::numeric, (random() * 6)::int)) AS iv,
        ((random() * 86400 * 1e6)::int8 * interval '1 microsecond')::time AS tm,
        (((random() * 86400 * 1e6)::int8 * interval '1 microsecond')::time::text
          || CASE WHEN random() < 0.5 THEN '+' ELSE '-' END || lpad(((random() * 14)::int)::text, 2, '0')
          || ':' || lpad(((random() * 59)::int)::text, 2, '0') || CASE WHEN random() < 0.2 THEN ':' || lpad(((random() * 59)::int)::text, 2, '0') ELSE '' END)::timetz AS tmtz,
        ARRAY(SELECT make_interval(0, 0, 0, 0, 0, 0, (random() * 1e6 - 5e5)::int8 / 1e6::float8 + k * 0) FROM generate_series(1, (g % 4)) k) AS a_iv,
        ARRAY(SELECT CASE WHEN random() < 0.2 THEN NULL ELSE (random() * 1e9)::int8 END FROM generate_series(1, (g % 6)) k) AS a_i8,
        decode(md5(g::text), 'hex') AS by
      FROM generate_series(1, 3000) g`;
    const columns: ColumnSchema[] = [
      { name: 'iv', type: 'interval', array: false, typeOid: 1186, key: false },
      { name: 'tm', type: 'time', array: false, typeOid: 1083, key: false },
      { name: 'tmtz', type: 'timetz', array: false, typeOid: 1266, key: false },
      { name: 'a_iv', type: 'interval', array: true, typeOid: 1187, key: false },
      { name: 'a_i8', type: 'int8', array: true, typeOid: 1016, key: false },
      { name: 'by', type: 'bytea', array: false, typeOid: 17, key: false },
    ];
    const chunks: Buffer[] = [];
    await pipeline(
      client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`)),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          chunks.push(chunk);
          done();
        },
      }),
    );
    const expected: Value[][] = [];
    const decoding = new CopyBinaryParser(columns.map((c) => decoderFor(c.type, c.array)));
    for (const chunk of chunks) decoding.push(chunk, (values) => expected.push([...values]));
    decoding.end();
    // Small batches, so that buffers grow and restart as they do in a stream.
    const builder = new SnapshotColumnsBuilder(columns, 1 << 20, { utf8Server: true, initialCapacity: 2 });
    const parser = new CopyBinaryParser(builder, columns.length);
    for (const chunk of chunks) parser.push(chunk);
    parser.end();
    const rows = builder.take();
    const read = rowReader(columns, rows);
    const got = Array.from({ length: rows.length }, (_, i) => columns.map((c) => read(i)[c.name]!));
    expect(got).toEqual(expected);
  });

  test('a change log whose typed tables hold these types as JSON text (an earlier layout) is refused with FF_STORE_FORMAT', async () => {
    const table = randomName('native_old');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, by bytea)`);
    await client.query(`INSERT INTO ${table} VALUES (1, '\\x01')`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    const db = await openDuckDB(config.store.config.path);
    try {
      // The earlier layout: the JSON text of each value in a VARCHAR column.
      const storage = snapshotStorageName(`public.${table}`);
      await db.connection.run(`ALTER TABLE "${storage}" ALTER COLUMN "by" TYPE VARCHAR USING '"\\\\x01"'`);
    } finally {
      db.close();
    }
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
  });
});
