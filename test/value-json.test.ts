import { describe, expect, test } from 'vitest';
import type { ColumnSchema, Row } from '../framework/types.js';
import { decodeRow, encodeRow, encodeValue, rowDecoder, rowEncoder, toPgParam } from '../framework/value-json.js';

// Unit tests of the change-log JSON form. test/pg-binary.int.test.ts also round-trips every value
// decoded from a real PostgreSQL through this form.

const col = (name: string, type: string, array = false): ColumnSchema => ({
  name,
  type,
  array,
  typeOid: 0,
  key: false,
});

const columns: ColumnSchema[] = [
  col('b', 'bool'),
  col('i2', 'int2'),
  col('i4', 'int4'),
  col('i8', 'int8'),
  col('o', 'oid'),
  col('f4', 'float4'),
  col('f8', 'float8'),
  col('n', 'numeric'),
  col('t', 'text'),
  col('e', 'enum'),
  col('u', 'uuid'),
  col('j', 'json'),
  col('jb', 'jsonb'),
  col('by', 'bytea'),
  col('d', 'date'),
  col('ts', 'timestamp'),
  col('tz', 'timestamptz'),
  col('tm', 'time'),
  col('ttz', 'timetz'),
  col('iv', 'interval'),
  col('ai8', 'int8', true),
  col('af8', 'float8', true),
  col('aby', 'bytea', true),
  col('at', 'text', true),
  col('ai4', 'int4', true),
];

const rows: Row[] = [
  {
    b: true,
    i2: -32768,
    i4: 2147483647,
    i8: 9223372036854775807n,
    o: 4294967295,
    f4: Math.fround(0.1),
    f8: 0.1,
    n: '-12345678901234567890.123400',
    t: 'quote " back\\slash \n tab\t 🎉 \u0000 \u2028',
    e: 'happy 😀',
    u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    j: '{"a": 1, "a": 2}',
    jb: '{"a": 123456789012345678901234567890}',
    by: Buffer.from([0, 255, 0, 16]),
    d: '0044-03-15 BC',
    ts: '1969-12-31T23:59:59.999999',
    tz: '0044-03-15T09:00:00.000000Z BC',
    tm: '24:00:00.000000',
    ttz: '12:00:00.000000+01:02:03',
    iv: 'P-1Y-2MT-0.5S',
    ai8: [
      [-9223372036854775808n, null],
      [0n, 1n],
    ],
    af8: [NaN, Infinity, -Infinity, -0, 1e300, null],
    aby: [Buffer.from(''), null, Buffer.from('\\x')],
    at: ['NULL', null, '', '{}', 'a,b'],
    ai4: [],
  },
  {
    b: false,
    i2: 0,
    i4: -0,
    i8: -1n,
    o: 0,
    f4: NaN,
    f8: -Infinity,
    n: 'NaN',
    t: '',
    e: '',
    u: '00000000-0000-0000-0000-000000000000',
    j: 'null',
    jb: '"\\u0000"',
    by: Buffer.alloc(0),
    d: 'infinity',
    ts: '-infinity',
    tz: 'infinity',
    tm: '00:00:00.000000',
    ttz: '00:00:00.000000-15:59',
    iv: 'PT0S',
    ai8: [],
    af8: [[1.5], [-0]],
    aby: [[Buffer.from([1])]],
    at: [[null]],
    ai4: null,
  },
  Object.fromEntries(columns.map((c) => [c.name, null])),
];

describe('change-log JSON', () => {
  test('round-trips every type exactly', () => {
    for (const row of rows) {
      expect(decodeRow(encodeRow(row), columns)).toStrictEqual(row);
      expect(decodeRow(rowEncoder(columns)(row), columns)).toStrictEqual(row);
    }
  });

  test('spells bigint, bytes and non-finite numbers as strings, -0 as a number', () => {
    expect(
      encodeRow({ a: 9007199254740993n, b: Buffer.from([0, 0xab]), c: NaN, d: Infinity, e: -Infinity, f: -0, g: 1e21 }),
    ).toBe('{"a":"9007199254740993","b":"\\\\x00ab","c":"NaN","d":"Infinity","e":"-Infinity","f":-0,"g":1e+21}');
    expect(encodeValue(new Uint8Array([1, 2, 3]).subarray(1))).toBe('"\\\\x0203"');
    expect(encodeValue([[1n, null], []])).toBe('[["1",null],[]]');
    expect(JSON.parse(encodeRow(rows[0]!)).by).toBe('\\x00ff0010');
  });

  test('the compiled encoder writes the listed columns present in the row, like encodeRow', () => {
    const encode = rowEncoder(columns);
    for (const row of rows) expect(encode(row)).toBe(encodeRow(row));
    expect(encode({ i8: 1n, t: 'x', unknown: 1 })).toBe('{"i8":"1","t":"x"}');
    expect(encode({})).toBe('{}');
    expect(rowEncoder([col('we"ird\\', 'int8')])({ 'we"ird\\': 5n })).toBe(encodeRow({ 'we"ird\\': 5n }));
    // values of an unexpected JS type still encode exactly
    expect(encode({ i8: 5 as never, f8: 7n as never, b: null })).toBe('{"b":null,"i8":5,"f8":"7"}');
  });

  test('columns missing from the JSON stay absent; unknown properties are kept as parsed', () => {
    const row = decodeRow('{"i8":"12","extra":{"x":[1]},"by":null}', columns);
    expect(row).toStrictEqual({ i8: 12n, extra: { x: [1] }, by: null });
    expect('t' in row).toBe(false);
    expect(rowDecoder(columns)('{"af8":["NaN",[1,"-Infinity"]]}')).toStrictEqual({ af8: [NaN, [1, -Infinity]] });
  });

  test('strings are written as JSON.stringify writes them (hex escapes upper-case, as DuckDB writes them), escaped or only quoted', () => {
    const strings = [
      '',
      'plain',
      'a"b',
      'a\\b',
      'tab\there',
      'nl\n',
      '\u0000\u001f\u007f',
      'é€',
      '😀',
      'lone \ud800 high',
      'lone \udc00 low',
      '\udc00\ud800',
      '\\u001a typed, \u001a real',
    ];
    const encode = rowEncoder([col('t', 'text'), col('ts', 'timestamptz')]);
    // JSON.stringify, with only the letters of real \u00XX escapes upper-cased.
    const upper = (json: string) =>
      json.replace(/\\\\|\\u00[01][a-f]/g, (m) => (m.length === 2 ? m : '\\u' + m.slice(2).toUpperCase()));
    expect(encodeValue('\u001f')).toBe('"\\u001F"');
    expect(encodeValue('\\u001a')).toBe('"\\\\u001a"');
    for (const s of strings) {
      expect(encodeValue(s)).toBe(upper(JSON.stringify(s)));
      expect(JSON.parse(encodeValue(s))).toBe(s);
      expect(encode({ t: s, ts: s })).toBe(upper(JSON.stringify({ t: s, ts: s })));
    }
  });

  test('rejects what is not a featureflow value', () => {
    expect(() => encodeRow({ a: new Date() as never })).toThrow(TypeError);
    expect(() => encodeRow({ a: {} as never })).toThrow(TypeError);
    expect(() => decodeRow('{"by":"00ff"}', columns)).toThrow(/not a bytea/);
    expect(() => decodeRow('{"f8":"1.5"}', columns)).toThrow(/not a float/);
  });
});

describe('toPgParam', () => {
  test('gives node-postgres parameters PostgreSQL parses back to the same value', () => {
    expect(toPgParam(9223372036854775807n, col('x', 'int8'))).toBe('9223372036854775807');
    expect(toPgParam(-0, col('x', 'float8'))).toBe('-0');
    expect(toPgParam(NaN, col('x', 'float4'))).toBe('NaN');
    expect(toPgParam(-Infinity, col('x', 'float8'))).toBe('-Infinity');
    expect(toPgParam(true, col('x', 'bool'))).toBe(true);
    expect(toPgParam(null, col('x', 'text'))).toBe(null);
    expect(Buffer.isBuffer(toPgParam(new Uint8Array([1]), col('x', 'bytea')))).toBe(true);
    expect(toPgParam('0044-03-15T09:00:00.000000Z BC', col('x', 'timestamptz'))).toBe(
      '0044-03-15 09:00:00.000000+00 BC',
    );
    expect(toPgParam('2000-01-01T00:00:00.000000', col('x', 'timestamp'))).toBe('2000-01-01 00:00:00.000000');
    expect(
      toPgParam(
        [
          ['a"b', 'c\\d'],
          [null, 'NULL'],
        ],
        col('x', 'text', true),
      ),
    ).toBe('{{"a\\"b","c\\\\d"},{NULL,"NULL"}}');
    expect(toPgParam([Buffer.from([0, 255])], col('x', 'bytea', true))).toBe('{"\\\\x00ff"}');
    expect(toPgParam([1n, -0], col('x', 'int8', true))).toBe('{"1","-0"}');
    expect(toPgParam([], col('x', 'int4', true))).toBe('{}');
  });
});
