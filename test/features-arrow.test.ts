import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { afterAll, describe, expect, test } from 'vitest';
import { queryArrow } from '../stores/duckdb/offline/duckdb-arrow.js';

const instance = await DuckDBInstance.create(':memory:');
const c = await instance.connect();
afterAll(() => {
  c.closeSync();
  instance.closeSync();
});

// Rows chosen so that several chunks (2048 rows each), every null pattern, inline (≤ 12 bytes) and
// out-of-line strings, multi-byte UTF-8 and empty values all occur.
const SQL = `
  SELECT range::INTEGER AS i,
         CASE WHEN range % 7 = 0 THEN NULL ELSE range * 1000000007 END::BIGINT AS big,
         CASE WHEN range % 5 = 0 THEN NULL ELSE range / 3 END::DOUBLE AS d,
         (range / 7)::FLOAT AS f,
         CASE WHEN range % 3 = 0 THEN NULL ELSE range % 2 = 0 END AS b,
         CASE WHEN range % 11 = 0 THEN NULL WHEN range % 4 = 0 THEN 'k' || range WHEN range % 4 = 1 THEN 'a longer string ' || range
              WHEN range % 4 = 2 THEN 'ünïcødé ✓ ' || range ELSE '' END AS s,
         make_timestamptz(1700000000000000::BIGINT + range * 1000003) AS ts,
         CASE WHEN range % 13 = 0 THEN NULL ELSE DATE '2024-01-01' + range::INTEGER END AS day,
         (CASE WHEN range % 9 = 0 THEN NULL ELSE [range / 2, range / 4, range / 8]::FLOAT[] END)::FLOAT[3] AS tensor,
         CASE WHEN range % 6 = 0 THEN NULL ELSE list_transform(range(range % 4), x -> x + range)::INTEGER[] END AS lst,
         uuid()::VARCHAR IS NOT NULL AS has_uuid
    FROM range(5000) ORDER BY range`;

describe('DuckDB results as Arrow, column-wise', () => {
  test("every column type equals DuckDB's own values, across chunks, with nulls", async () => {
    const table = await queryArrow(c, SQL);
    const expected = (await c.runAndReadAll(SQL)).getRowObjectsJS();
    expect(table.numRows).toBe(5000);
    expect(table.batches.length).toBeGreaterThan(2);
    expect(table.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual([
      'i:Int32',
      'big:Int64',
      'd:Float64',
      'f:Float32',
      'b:Bool',
      's:Utf8',
      'ts:Timestamp<MICROSECOND, UTC>',
      'day:Date32<DAY>',
      'tensor:FixedSizeList[3]<Float32>',
      'lst:List<Int32>',
      'has_uuid:Bool',
    ]);
    const columns = Object.fromEntries(table.schema.fields.map((f) => [f.name, table.getChild(f.name)!]));
    for (let r = 0; r < 5000; r++) {
      const e = expected[r]!;
      const row = {
        i: columns.i!.get(r),
        big: columns.big!.get(r),
        d: columns.d!.get(r),
        f: columns.f!.get(r),
        b: columns.b!.get(r),
        s: columns.s!.get(r),
        tsMicros: Math.round((columns.ts!.get(r) as number) * 1000),
        day: columns.day!.get(r),
        tensor: columns.tensor!.get(r) === null ? null : Array.from(columns.tensor!.get(r) as Iterable<number>),
        lst: columns.lst!.get(r) === null ? null : Array.from(columns.lst!.get(r) as Iterable<number>),
      };
      expect(row, `row ${r}`).toEqual({
        i: e.i,
        big: e.big,
        d: e.d,
        f: e.f,
        b: e.b,
        s: e.s,
        tsMicros: 1700000000000000 + r * 1000003,
        day: e.day === null ? null : (e.day as Date).getTime(),
        tensor: e.tensor,
        lst: e.lst,
      });
    }
  });

  test('the table survives the Arrow IPC file format', async () => {
    const table = await queryArrow(c, SQL);
    const back = tableFromIPC(tableToIPC(table, 'file'));
    expect(back.numRows).toBe(5000);
    expect(back.getChild('s')!.get(4001)).toBe('a longer string 4001');
    expect(back.getChild('s')!.get(4002)).toBe('ünïcødé ✓ 4002');
    expect(Array.from(back.getChild('tensor')!.get(3) as Iterable<number>)).toEqual([1.5, 0.75, 0.375]);
  });

  test('an empty result keeps its columns', async () => {
    const table = await queryArrow(c, `${SQL.replace('ORDER BY range', '')} LIMIT 0`);
    expect(table.numRows).toBe(0);
    expect(table.schema.fields).toHaveLength(11);
  });
});
