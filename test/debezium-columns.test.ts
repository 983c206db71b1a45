import { describe, expect, test } from 'vitest';
import type { ColumnSchema, Value } from '../framework/types.js';
import { columnOfField, columnOfValue, declaredType } from '../sources/kafka/debezium-columns.js';
import { decodeValue } from '../sources/kafka/debezium-decode.js';
import { parseExactJson } from '../sources/kafka/exact-json.js';
import { columnSchema, columnValue, toJson } from '../stores/debezium/debezium-values.js';

// Debezium's encodings read back. The oracle is featureflow's own Debezium encoder
// (stores/debezium, checked field by field against real Debezium in debezium-envelope.int.test.ts):
// a value encoded as Debezium writes it, through JSON text, must decode to the value itself.

const col = (type: string, extra: Partial<ColumnSchema> = {}): ColumnSchema => ({
  name: 'c',
  type,
  array: false,
  typeOid: 0,
  key: false,
  ...extra,
});

/** Encodes `value` as Debezium would, writes and parses the JSON text, decodes it with the schema's column. */
function roundTrip(column: ColumnSchema, value: Value): Value {
  const schema = columnSchema(column);
  const text = toJson({ schema, value: columnValue(column, value) } as never);
  const parsed = parseExactJson(text) as { schema: never; value: unknown };
  const decoded = columnOfField(parsed.schema, false);
  expect(decoded?.schema.type).toBe(column.type);
  return decodeValue(decoded!, parsed.value);
}

const CASES: [ColumnSchema, Value[]][] = [
  [col('bool'), [true, false, null]],
  [col('int2'), [-32768, 32767]],
  [col('int4'), [-2147483648, 2147483647]],
  [col('int8'), [-9223372036854775808n, 9007199254740993n, 0n]],
  [col('float4'), [Math.fround(1.1), Number.NaN, Number.POSITIVE_INFINITY, Math.fround(3.4028235e38)]],
  [col('float8'), [0.1, 5e-324, Number.NEGATIVE_INFINITY, 1.7976931348623157e308]],
  [col('numeric', { typeModifier: ((30 << 16) | 5) + 4 }), ['-1234567890123456789012345.12345', '0.00000', '1.50000']],
  [col('numeric'), ['123456789012345678901234567890.12345678901234567890123456789', '-0.5', '0']],
  [col('text'), ['héllo ✓ 𝄞 "quoted" \\', '']],
  [col('bytea'), [Uint8Array.from([0, 255, 16, 171]), new Uint8Array(0)]],
  [col('uuid'), ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']],
  [col('json'), ['{"b": 1,  "a": [1, 2.50, "x"]}']],
  [col('date'), ['2024-02-29', '0044-03-15 BC', '1970-01-01', '0001-01-01']],
  [col('timestamp'), ['2024-01-02T03:04:05.123456', '1969-12-31T23:59:59.999999', '0001-01-01T00:00:00.000000 BC']],
  [col('timestamptz'), ['2024-01-01T21:34:05.123456Z', '1970-01-01T00:00:00.000001Z']],
  [col('time'), ['12:34:56.789012', '00:00:00.000000', '24:00:00.000000']],
  [col('interval'), ['PT4H5M6.5S', 'PT-1M', 'PT0S']],
  [col('int8', { array: true }), [[9007199254740993n, null, -9223372036854775808n]]],
  [col('text', { array: true }), [['a b', 'c"d', null, '']]],
  [
    col('int4', { array: true }),
    [
      [
        [1, 2],
        [3, null],
      ],
    ],
  ],
];

describe('Debezium column encodings read back', () => {
  for (const [column, values] of CASES) {
    test(`${column.type}${column.array ? '[]' : ''}${column.typeModifier ? ` (typmod ${column.typeModifier})` : ''}`, () => {
      for (const value of values) expect(roundTrip(column, value)).toEqual(value);
    });
  }

  test('int64s beyond 2^53 keep every digit through JSON', () => {
    expect(
      parseExactJson('{"a":9223372036854775807,"b":"12345678901234567890","c":[-9007199254740993,1.5e300]}'),
    ).toEqual({
      a: 9223372036854775807n,
      b: '12345678901234567890',
      c: [-9007199254740993n, 1.5e300],
    });
  });

  test('Decimal bytes take the scale of the schema; without schemas, of the declared type', () => {
    const field = {
      type: 'bytes',
      name: 'org.apache.kafka.connect.data.Decimal',
      parameters: { scale: '2', 'connect.decimal.precision': '12' },
      field: 'amount',
    };
    expect(decodeValue(columnOfField(field, false)!, Buffer.from([0x30, 0x39]).toString('base64'))).toBe('123.45');
    expect(decodeValue(columnOfValue('amount', 'MDk=', false, 'numeric(12,2)'), 'MDk=')).toBe('123.45');
    // decimal.handling.mode=string keeps the text; without a declared type a string column is text.
    expect(decodeValue(columnOfValue('amount', '123.450', false, 'numeric'), '123.450')).toBe('123.450');
    expect(columnOfValue('amount', '123.450', false).schema.type).toBe('text');
  });

  test('without schemas, types are inferred from the values unless declared', () => {
    expect(columnOfValue('n', 9007199254740993n, false).schema.type).toBe('int8');
    expect(columnOfValue('n', 1, false).schema.type).toBe('int8');
    expect(columnOfValue('n', 1.5, false).schema.type).toBe('float8');
    expect(columnOfValue('n', [true], false).schema).toMatchObject({ type: 'bool', array: true });
    expect(decodeValue(columnOfValue('ts', 0, false, 'timestamp'), 1_700_000_000_123_456)).toBe(
      '2023-11-14T22:13:20.123456',
    );
  });

  test('declared types: PostgreSQL names, arrays, modifiers', () => {
    expect(declaredType('int4')).toEqual({ type: 'int4', array: false });
    expect(declaredType('float8[]')).toEqual({ type: 'float8', array: true });
    expect(declaredType('_int8')).toEqual({ type: 'int8', array: true });
    expect(declaredType('double precision')).toEqual({ type: 'float8', array: false });
    expect(declaredType('numeric(12, 2)')).toEqual({
      type: 'numeric',
      array: false,
      typeModifier: ((12 << 16) | 2) + 4,
    });
    expect(declaredType('timestamp(3)')).toEqual({ type: 'timestamp', array: false, typeModifier: 3 });
    expect(declaredType('geometry')).toBeNull();
  });
});
