import { describe, expect, test } from 'vitest';
import type { ColumnSchema } from '../framework/types.js';
import { columnValue, toJson, twosComplement } from '../stores/debezium/debezium-values.js';

// Values as real Debezium 3.6 wrote them for the same PostgreSQL values (recorded from
// test/debezium-envelope.int.test.ts's table); the comparison against Debezium itself is that test.

const col = (type: string, typeModifier?: number, array = false): ColumnSchema => ({
  name: 'c',
  type,
  array,
  typeOid: 0,
  key: false,
  ...(typeModifier === undefined ? {} : { typeModifier }),
});
const json = (column: ColumnSchema, value: Parameters<typeof columnValue>[1]) => toJson(columnValue(column, value));

describe('Debezium values', () => {
  test('numerics: precise decimals, variable scale without trailing zeros, NaN as null', () => {
    expect(json(col('numeric'), '123.4500')).toBe('{"scale":2,"value":"MDk="}');
    expect(json(col('numeric'), '5')).toBe('{"scale":0,"value":"BQ=="}');
    expect(json(col('numeric'), 'NaN')).toBe('null');
    // 15 digits (unscaled in number arithmetic) and 16 (as a bigint), either sign.
    expect(json(col('numeric'), '-99999999999999.9')).toBe(
      `{"scale":1,"value":"${Buffer.from(twosComplement(-999999999999999n)).toString('base64')}"}`,
    );
    expect(json(col('numeric'), '999999999999999.9')).toBe(
      `{"scale":1,"value":"${Buffer.from(twosComplement(9999999999999999n)).toString('base64')}"}`,
    );
    // numeric(30,5): ((30 << 16) | 5) + 4
    expect(json(col('numeric', ((30 << 16) | 5) + 4), '-1234567890123456789012345.12345')).toBe(
      '"/nEW8Ak8jB8RscHOJw=="',
    );
    expect([...twosComplement(128n)]).toEqual([0, 128]);
    expect([...twosComplement(-129n)]).toEqual([255, 127]);
  });

  test("numerics' bytes are Java's BigInteger.toByteArray(), at every byte boundary and sign", () => {
    // The definition, a byte at a time: the low byte first, until the rest is the sign alone.
    const reference = (n: bigint): number[] => {
      const bytes: number[] = [];
      for (let v = n; ; ) {
        const byte = Number(v & 0xffn);
        bytes.unshift(byte);
        v >>= 8n;
        if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) return bytes;
      }
    };
    const values = [0n, 1n, -1n, 127n, 128n, -128n, -129n, 255n, 256n, -256n, -257n];
    for (let bits = 1n; bits <= 130n; bits++) {
      const p = 1n << bits;
      values.push(p, p - 1n, p + 1n, -p, -p - 1n, -p + 1n, (p * 7n) / 5n, -(p * 3n) / 7n);
    }
    for (const n of values) {
      expect([...twosComplement(n)], String(n)).toEqual(reference(n));
      // A safe integer given as a number (most decimals) makes the same bytes.
      if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER))
        expect([...twosComplement(Number(n))], `${n} as a number`).toEqual(reference(n));
    }
  });

  test('dates and times, BC and infinite ones included', () => {
    expect(json(col('date'), '2024-02-29')).toBe('19782');
    expect(json(col('timestamp'), '2024-01-02T03:04:05.123456')).toBe('1704164645123456');
    expect(json(col('timestamp', 3), '2024-01-02T03:04:05.123000')).toBe('1704164645123');
    expect(json(col('timestamp'), '0044-03-15T03:04:05.000000 BC')).toBe('-63517812955000000');
    // Not recorded: the int64 limit Debezium's documentation gives for infinite timestamps.
    expect(json(col('timestamp'), 'infinity')).toBe('9223372036854775807');
    expect(json(col('date'), '-infinity')).toBe('-2147483648');
    expect(json(col('timestamptz'), '2024-01-01T21:34:05.123456Z')).toBe('"2024-01-01T21:34:05.123456Z"');
    expect(json(col('time'), '12:34:56.789012')).toBe('45296789012');
    expect(json(col('time', 3), '12:34:56.789000')).toBe('45296789');
    expect(json(col('timetz'), '12:34:56.789012+05:30')).toBe('"07:04:56.789012Z"');
    expect(json(col('timetz'), '00:00:00.000000-08:00')).toBe('"08:00:00Z"');
    expect(json(col('interval'), 'P1Y2M3DT4H5M6.5S')).toBe('37091106500000');
  });

  test('floats: float4 as its shortest decimal, NaN and infinities as strings', () => {
    expect(json(col('float4'), Math.fround(0.1))).toBe('0.1');
    expect(json(col('float8', undefined, true), [0.1, Number.NaN, Number.NEGATIVE_INFINITY])).toBe(
      '[0.1,"NaN","-Infinity"]',
    );
    expect(json(col('int8'), -9223372036854775808n)).toBe('-9223372036854775808');
  });
});

describe('toJson', () => {
  test('writes what JSON.stringify writes, bigints as exact numbers', () => {
    const values = [
      null,
      true,
      false,
      0,
      -0,
      1.5e-7,
      123456789.125,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '',
      'quote " backslash \\ newline \n tab \t nul \u0000 é 😀 lone \ud800',
      [],
      {},
      [1, 'a', null, [true, { x: [] }]],
      { b: 1, a: { '2': 'two', '1': 'one', 'k"ey': null }, c: [{}] },
    ];
    for (const value of values) expect(toJson(value as never)).toBe(JSON.stringify(value));
    expect(toJson({ big: 9_223_372_036_854_775_807n, small: -9_223_372_036_854_775_808n, list: [0n, 1n] })).toBe(
      '{"big":9223372036854775807,"small":-9223372036854775808,"list":[0,1]}',
    );
    // Left out of objects and null in arrays, as JSON.stringify does.
    expect(toJson({ a: undefined, b: [undefined] } as never)).toBe('{"b":[null]}');
    expect(toJson({ d: new Date(0) } as never)).toBe('{"d":"1970-01-01T00:00:00.000Z"}');
  });
});
