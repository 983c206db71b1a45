import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import type { Row } from '../framework/types.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp, latestSchema } from './ingest-harness.js';

// Every supported type through both paths: COPY binary in the exported snapshot, and pgoutput in
// binary mode. PostgreSQL is the oracle for the rebuilt state; identical rows read by the two paths
// must decode to identical values.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

const COLUMNS = `
  id int8 PRIMARY KEY,
  i2 int2, i4 int4, i8 int8,
  num numeric, num_s numeric(30,5),
  f4 float4, f8 float8,
  b bool, t text, vc varchar(20), ch char(5), by bytea,
  d date, ts timestamp, tstz timestamptz, tm time, tmtz timetz, iv interval,
  u uuid, js json, jb jsonb,
  a_i2 int2[], a_i4 int4[], a_i8 int8[], a_num numeric[], a_f4 float4[], a_f8 float8[], a_b bool[], a_t text[],
  a_vc varchar(10)[], a_by bytea[], a_d date[], a_ts timestamp[], a_tstz timestamptz[], a_tm time[], a_tmtz timetz[],
  a_iv interval[], a_u uuid[], a_js json[], a_jb jsonb[], a_2d int4[][],
  mood %ENUM%, a_mood %ENUM%[], dom %DOMAIN%, a_dom %DOMAIN%[]`;

/** Column lists of the value rows below (everything but id). */
const NAMES =
  'i2, i4, i8, num, num_s, f4, f8, b, t, vc, ch, by, d, ts, tstz, tm, tmtz, iv, u, js, jb, ' +
  'a_i2, a_i4, a_i8, a_num, a_f4, a_f8, a_b, a_t, a_vc, a_by, a_d, a_ts, a_tstz, a_tm, a_tmtz, a_iv, a_u, a_js, a_jb, a_2d, ' +
  'mood, a_mood, dom, a_dom';

/** Value rows (SQL literals, in {@link NAMES} order): edge cases of every type. */
const VALUES = [
  `-32768, -2147483648, -9223372036854775808, 'NaN', 1.5, 'NaN', 'NaN', true, '', '', '', '\\x',
   '-infinity', '-infinity', '-infinity', '00:00:00', '00:00:00+00', '0 seconds',
   '00000000-0000-0000-0000-000000000000', '{}', '{}',
   '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
   'sad', '{}', 1, '{}'`,
  `32767, 2147483647, 9223372036854775807, 'Infinity', '-0.00001', 'Infinity', 'Infinity', false,
   'héllo ✓ 𝄞 "quoted" \\ back\\slash {braces} , comma', 'twenty chars exactly', 'ab', '\\x00ff10ab',
   'infinity', 'infinity', 'infinity', '24:00:00', '23:59:59.999999-14:59', '-178000000 years',
   'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"b": 1,  "a": [1, 2.50, "x"]}', '{"b": 1,  "a": [1, 2.50, "x"], "u": "\\u00e9"}',
   '{-32768,32767,NULL}', '{1,NULL,-2147483648}', '{9007199254740993,-9223372036854775808,NULL}',
   '{NaN,Infinity,-Infinity,0.000000000000000000001,NULL}', '{NaN,Infinity,-Infinity,1.1,-0}', '{NaN,Infinity,-Infinity,0.1,-0,5e-324}',
   '{true,false,NULL}', '{"a b","c\\"d","e\\\\f",NULL,"","NULL","{x}"}', '{"x y",z}', '{"\\\\x00ff",NULL,"\\\\x"}',
   '{2024-02-29,infinity,"0044-03-15 BC",NULL}', '{"2024-01-02 03:04:05.123456","0001-01-01 00:00:00 BC"}',
   '{"2024-01-02 03:04:05.123456+05:30",-infinity}', '{"12:00:00.000001",NULL}', '{"12:00:00+05:45"}',
   '{"1 year 2 mons 3 days 04:05:06.5","-1 days +02:00:00",NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
   ARRAY['{"k": [1, 2]}'::json, 'null'::json], '{"{\\"k\\": [1, 2]}",null,NULL}', '{{1,2,3},{4,NULL,6}}',
   'happy', '{sad,happy,NULL}', 2147483647, '{1,NULL,7}'`,
  `0, 0, 9007199254740993, '123456789012345678901234567890.123456789012345678901234567890', '-1234567890123456789012345.12345',
   '-Infinity', '-Infinity', NULL, E'line1\\nline2\\ttab', 'x', 'abcde', '\\xdeadbeef',
   '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+05:30', '12:34:56.789012', '12:34:56.789012+05:30',
   '1 year 2 mons 3 days 04:05:06.5',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1, 2,   3]', '[1, 2,   3]',
   NULL, '{0}', '{-9007199254740993}', '{1e-20,-1e20}', '{3.4028235e38,1e-45}', '{1.7976931348623157e308}', '{NULL}', '{NULL}',
   '{""}', '{"\\\\x41"}', '{"0001-01-01 BC"}', '{"294276-12-31 23:59:59.999999"}', '{"1970-01-01 00:00:00.000001+00"}',
   '{"24:00:00"}', '{"00:00:00-08"}', '{"P-1Y-2M3DT-4H-5M-6.000007S"}', '{}', '{}', '{"[]"}', '{{1},{2}}',
   'ok', '{ok}', 42, '{}'`,
  `1, -1, -9007199254740993, '0', '0.00000', 1.1, 0.1, true, 'plain', 'vc', 'a b', '\\x00',
   '0044-03-15 BC', '1999-12-31 23:59:59.999999', '1970-01-01 00:00:00.000001+00', '23:59:59.999999', '00:00:00-08',
   '-1 days +02:00:00.000001',
   'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '"just a string"', '"just a string"',
   '{1}', '{{1,2},{3,4}}', '{1}', '{1.50}', '{-0}', '{-0}', '{true}', '{"é"}',
   '{"quo\\"te"}', '{}', '{1999-01-08}', '{infinity}', '{infinity}', '{"00:00:00"}', '{"23:59:59.999999-14:59"}',
   '{"00:00:00"}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"{}"}', '{"{}"}', '{}',
   'sad', '{happy}', 3, '{3}'`,
  `-1, 1, 1, '-0.5', '99999999999999999999999.99999', '-0', '-0', false, repeat('x', 3000), '', '     ', decode(repeat('ab', 2000), 'hex'),
   '0001-01-01', '0001-01-01 00:00:00 BC', '0001-01-01 00:00:00+00 BC', '00:00:00.000001', '24:00:00+14:59',
   '178000000 years -1 microseconds',
   'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'null', 'null',
   '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
   NULL, NULL, NULL, NULL`,
];

/** Drops the id from a row, for comparing rows that differ only in their key. */
function withoutId(row: Row): Row {
  const { id: _id, ...rest } = row;
  return rest;
}

describe('every type round-trips through snapshot and stream', () => {
  test('rebuilt state equals PostgreSQL and the snapshot and the stream decode identical rows identically', async () => {
    const table = randomName('types');
    const enumType = randomName('mood');
    const domain = randomName('posint');
    await client.query(`CREATE TYPE ${enumType} AS ENUM ('sad', 'ok', 'happy')`);
    await client.query(`CREATE DOMAIN ${domain} AS int4 CHECK (VALUE > 0)`);
    await client.query(
      `CREATE TABLE ${table} (${COLUMNS.replaceAll('%ENUM%', enumType).replaceAll('%DOMAIN%', domain)})`,
    );
    const n = VALUES.length;
    // Rows 1..n, and n+1: every column NULL.
    for (let i = 0; i < n; i++)
      await client.query(`INSERT INTO ${table} (id, ${NAMES}) VALUES (${i + 1}, ${VALUES[i]})`);
    await client.query(`INSERT INTO ${table} (id) VALUES (${n + 1})`);

    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    const first = await ingestUntilCaughtUp(config);
    expect(first.snapshotted).toBe(true);

    // The stream: the same values again under ids 1001.., then updates and deletes.
    await client.query(
      `INSERT INTO ${table} (id, ${NAMES}) SELECT id + 1000, ${NAMES} FROM ${table} WHERE id <= ${n + 1}`,
    );
    await client.query(
      `INSERT INTO ${table} (id, ${NAMES}) SELECT id + 2000, ${NAMES} FROM ${table} WHERE id <= ${n + 1}`,
    );
    // Row 2001 takes row 2's values column by column, row 2002 all of row 3's at once, 2003 becomes all NULL.
    await client.query(
      `UPDATE ${table} t SET (${NAMES}) = (SELECT ${NAMES} FROM ${table} WHERE id = 2) WHERE t.id = 2001`,
    );
    await client.query(
      `UPDATE ${table} t SET (${NAMES}) = (SELECT ${NAMES} FROM ${table} WHERE id = 3) WHERE t.id = 2002`,
    );
    await client.query(
      `UPDATE ${table} t SET (${NAMES}) = (SELECT ${NAMES} FROM ${table} WHERE id = ${n + 1}) WHERE t.id = 2003`,
    );
    await client.query(
      `UPDATE ${table} SET i8 = i8 - 1, num = num * 3, tstz = tstz + interval '1 microsecond' WHERE id = 2004`,
    );
    await client.query(`DELETE FROM ${table} WHERE id = 2005`);
    const second = await ingestUntilCaughtUp(config);
    expect(second.snapshotted).toBe(false);

    const { diff, changes, schemas, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(latestSchema(schemas, `public.${table}`).columns.map((c) => c.type)).toContain('enum');

    const snapshotRows = new Map<bigint, Row>();
    const streamRows = new Map<bigint, Row>();
    for (const c of changes) {
      if (c.op === 'r') snapshotRows.set(c.after!.id as bigint, c.after!);
      else if (c.op === 'c') streamRows.set(c.after!.id as bigint, c.after!);
    }
    expect(snapshotRows.size).toBe(n + 1);
    expect(streamRows.size).toBe(2 * (n + 1));
    for (const [id, row] of snapshotRows) {
      expect(withoutId(streamRows.get(id + 1000n)!)).toEqual(withoutId(row));
      expect(withoutId(streamRows.get(id + 2000n)!)).toEqual(withoutId(row));
    }
    // Updates decode like inserts of the same values.
    const updated = (id: number) => [...state.values()].find((r) => r.id === BigInt(id))!;
    expect(withoutId(updated(2001))).toEqual(withoutId(snapshotRows.get(2n)!));
    expect(withoutId(updated(2002))).toEqual(withoutId(snapshotRows.get(3n)!));
    expect(withoutId(updated(2003))).toEqual(withoutId(snapshotRows.get(BigInt(n + 1))!));

    // Exact JavaScript forms, spot-checked.
    const r2 = snapshotRows.get(2n)!;
    const r3 = snapshotRows.get(3n)!;
    expect(r2.i8).toBe(9223372036854775807n);
    expect(r3.i8).toBe(9007199254740993n);
    expect(r2.a_i8).toEqual([9007199254740993n, -9223372036854775808n, null]);
    expect(r3.num).toBe('123456789012345678901234567890.123456789012345678901234567890');
    expect(snapshotRows.get(1n)!.num).toBe('NaN');
    expect(Number.isNaN(snapshotRows.get(1n)!.f8)).toBe(true);
    expect(r2.f4).toBe(Infinity);
    expect(Object.is(snapshotRows.get(5n)!.f8, -0)).toBe(true);
    expect(r3.tstz).toBe('2024-01-01T21:34:05.123456Z');
    expect(r3.tmtz).toBe('12:34:56.789012+05:30');
    expect(r3.ts).toBe('2024-01-02T03:04:05.123456');
    expect(r2.ch).toBe('ab   ');
    expect(Buffer.from(r2.by as Uint8Array).toString('hex')).toBe('00ff10ab');
    expect(r2.a_2d).toEqual([
      [1, 2, 3],
      [4, null, 6],
    ]);
    expect(r2.mood).toBe('happy');
    expect(r2.dom).toBe(2147483647);
    expect(r3.js).toBe('[1, 2,   3]');
    expect(r3.jb).toBe('[1, 2, 3]');
    expect(updated(2004).i8).toBe(-9007199254740994n);
  });
});
