import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import type { ColumnSchema, Value } from '../framework/types.js';
import { decodeRow, encodeRow, rowEncoder, toPgParam } from '../framework/value-json.js';
import { CopyBinaryParser } from '../sources/postgres/copy-binary-parser.js';
import { decoderFor } from '../sources/postgres/pg-binary.js';
import { numericTextBound, writeNumericText } from '../sources/postgres/pg-numeric.js';
import { PgTypeResolver } from '../sources/postgres/pg-types.js';

// PostgreSQL is the oracle: every decoded value is compared with PostgreSQL's own text output of the
// same value (brought to our form by a small normaliser below), and pushed back through toPgParam to
// check that PostgreSQL reads it as the same value.

let client: pg.Client;
const resolver = new PgTypeResolver();
const query = (sql: string, params: unknown[]) => client.query(sql, params);

beforeAll(async () => {
  client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  await client.query(
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 1",
  );
});

afterAll(async () => {
  await client?.end();
});

const tableName = () => `t_${randomUUID().slice(0, 8)}`;

/** The raw bytes of `COPY (sql) TO STDOUT (FORMAT binary)`, in the chunks pg-copy-streams gave. */
async function copyChunks(sql: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  await pipeline(
    client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`)),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        done();
      },
    }),
  );
  return chunks;
}

function parseChunks(chunks: Buffer[], columns: readonly ColumnSchema[]): Value[][] {
  const parser = new CopyBinaryParser(columns.map((c) => decoderFor(c.type, c.array)));
  const rows: Value[][] = [];
  for (const chunk of chunks) parser.push(chunk, (values) => rows.push(values));
  parser.end();
  return rows;
}

/** Splits a byte stream into chunks of the given sizes (cycling). */
function resplit(chunks: Buffer[], sizes: number[]): Buffer[] {
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let pos = 0, i = 0; pos < all.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(all.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** Columns of a table as featureflow sees them, plus the declared type for `$1::<type>` casts. */
async function tableColumns(table: string): Promise<(ColumnSchema & { sqlType: string })[]> {
  const { rows } = await client.query(
    `SELECT attname, atttypid::int8 AS oid, format_type(atttypid, atttypmod) AS sqltype
       FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [table],
  );
  const out = [];
  for (const r of rows) {
    const info = await resolver.resolve(Number(r.oid), query);
    out.push({
      name: r.attname,
      type: info.type,
      array: info.array,
      typeOid: Number(r.oid),
      key: false,
      sqlType: r.sqltype,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL text output → our Value form

function normaliseScalar(text: string | null, type: string): Value {
  if (text === null) return null;
  switch (type) {
    case 'bool':
      return text === 't' || text === 'true';
    case 'int2':
    case 'int4':
    case 'oid':
    case 'float8':
      return Number(text);
    case 'float4':
      return Math.fround(Number(text));
    case 'int8':
      return BigInt(text);
    case 'bytea':
      expect(text.startsWith('\\x')).toBe(true);
      return Buffer.from(text.slice(2), 'hex');
    case 'timestamp':
    case 'timestamptz': {
      if (text === 'infinity' || text === '-infinity') return text;
      const m = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(\+00)?( BC)?$/.exec(text);
      if (!m) throw new Error(`unexpected ${type} text ${text}`);
      expect(m[4] !== undefined).toBe(type === 'timestamptz');
      return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}${type === 'timestamptz' ? 'Z' : ''}${m[5] ?? ''}`;
    }
    case 'time': {
      const m = /^(\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/.exec(text);
      if (!m) throw new Error(`unexpected time text ${text}`);
      return `${m[1]}.${(m[2] ?? '').padEnd(6, '0')}`;
    }
    case 'timetz': {
      const m = /^(\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([+-]\d\d)(:\d\d)?(:\d\d)?$/.exec(text);
      if (!m) throw new Error(`unexpected timetz text ${text}`);
      return `${m[1]}.${(m[2] ?? '').padEnd(6, '0')}${m[3]}${m[4] ?? ':00'}${m[5] ?? ''}`;
    }
    default:
      // numeric, text, enum, uuid, json, jsonb, date, interval (iso_8601): our form is PostgreSQL's.
      return text;
  }
}

/** Parses PostgreSQL's array text output into nested arrays of element texts (null for NULL). */
function parsePgArray(text: string): (string | null)[] | unknown[] {
  let pos = 0;
  if (text[0] === '[') pos = text.indexOf('=') + 1; // explicit bounds, e.g. [0:1]={…}
  const parse = (): unknown[] => {
    expect(text[pos]).toBe('{');
    pos++;
    const out: unknown[] = [];
    if (text[pos] === '}') {
      pos++;
      return out;
    }
    for (;;) {
      if (text[pos] === '{') out.push(parse());
      else if (text[pos] === '"') {
        let s = '';
        pos++;
        while (text[pos] !== '"') {
          if (text[pos] === '\\') pos++;
          s += text[pos++];
        }
        pos++;
        out.push(s);
      } else {
        let s = '';
        while (text[pos] !== ',' && text[pos] !== '}') s += text[pos++];
        out.push(s === 'NULL' ? null : s);
      }
      if (text[pos] === '}') {
        pos++;
        return out;
      }
      expect(text[pos]).toBe(',');
      pos++;
    }
  };
  const out = parse();
  expect(pos).toBe(text.length);
  return out;
}

function normalise(text: string | null, column: ColumnSchema): Value {
  if (text === null || !column.array) return normaliseScalar(text, column.type);
  const walk = (v: unknown): Value =>
    Array.isArray(v) ? v.map(walk) : normaliseScalar(v as string | null, column.type);
  return walk(parsePgArray(text));
}

/** Formats our values must have, beyond equality with the oracle. */
const FORM: Record<string, RegExp> = {
  timestamp: /^(-?infinity|\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}( BC)?)$/,
  timestamptz: /^(-?infinity|\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z( BC)?)$/,
  date: /^(-?infinity|\d{4,}-\d\d-\d\d( BC)?)$/,
  time: /^\d\d:\d\d:\d\d\.\d{6}$/,
  timetz: /^\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d(:\d\d)?$/,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
};

function checkForm(value: Value, column: ColumnSchema): void {
  if (value === null) return;
  if (Array.isArray(value)) {
    for (const v of value) checkForm(v, column);
    return;
  }
  const form = FORM[column.type];
  if (form) expect(value).toMatch(form);
  const js: Record<string, string> = {
    bool: 'boolean',
    int2: 'number',
    int4: 'number',
    oid: 'number',
    float4: 'number',
    float8: 'number',
    int8: 'bigint',
  };
  if (column.type === 'bytea') expect(Buffer.isBuffer(value)).toBe(true);
  else expect(typeof value).toBe(js[column.type] ?? 'string');
}

// ---------------------------------------------------------------------------------------------

/**
 * Creates a table with one column per type, inserts the rows (SQL expressions, null for NULL) and
 * checks what our COPY decoding gives against PostgreSQL. Returns the decoded rows.
 */
async function checkTable(types: string[], rows: (string | null)[][], setup = ''): Promise<Value[][]> {
  const table = tableName();
  if (setup) await client.query(setup);
  await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, ${types.map((t, i) => `c${i} ${t}`).join(', ')})`);
  rows.push(types.map(() => null)); // a row of NULLs
  for (const [i, row] of rows.entries()) {
    await client.query(`INSERT INTO ${table} VALUES (${i}, ${row.map((v) => v ?? 'NULL').join(', ')})`);
  }
  return checkExistingTable(table, Infinity);
}

/** The checks of {@link checkTable} on a filled table with an `id` first column; pushes back the first rows only. */
async function checkExistingTable(table: string, pushBackRows: number): Promise<Value[][]> {
  const columns = await tableColumns(table);
  const chunks = await copyChunks(`SELECT * FROM ${table} ORDER BY id`);
  const decoded = parseChunks(chunks, columns);

  // 1. equal to PostgreSQL's text output, normalised to our form
  const text = await client.query({
    text: `SELECT * FROM ${table} ORDER BY id`,
    rowMode: 'array',
    types: { getTypeParser: () => (v: string) => v },
  });
  expect(decoded.length).toBe(text.rows.length);
  for (const [r, values] of decoded.entries()) {
    for (const [c, column] of columns.entries()) {
      const ctx = `row ${r} column ${column.sqlType}: PostgreSQL printed ${text.rows[r][c]}`;
      expect(values[c], ctx).toStrictEqual(normalise(text.rows[r][c], column));
      checkForm(values[c]!, column);
    }
  }

  // 2. PostgreSQL reads the decoded value back as the same value (compared by its text output)
  for (const [r, values] of decoded.slice(0, pushBackRows).entries()) {
    for (const [c, column] of columns.entries()) {
      if (c === 0) continue;
      const { rows: check } = await client.query(
        `SELECT ${column.name}::text AS original, ($1::${column.sqlType})::text AS ours FROM ${table} WHERE id = $2`,
        [toPgParam(values[c]!, column), values[0]],
      );
      expect(check[0].ours, `row ${r} column ${column.sqlType} pushed back as ${String(values[c])}`).toBe(
        check[0].original,
      );
    }
  }

  // 3. any chunking decodes the same: 1-byte chunks, odd sizes
  expect(parseChunks(resplit(chunks, [1]), columns)).toStrictEqual(decoded);
  expect(parseChunks(resplit(chunks, [3, 7, 1, 19, 2, 64]), columns)).toStrictEqual(decoded);

  // 4. the change-log JSON form round-trips
  const encode = rowEncoder(columns);
  for (const values of decoded) {
    const row = Object.fromEntries(columns.map((c, i) => [c.name, values[i]!]));
    expect(decodeRow(encodeRow(row), columns)).toStrictEqual(row);
    expect(encode(row)).toBe(encodeRow(row));
  }
  return decoded;
}

describe('binary COPY decoding matches PostgreSQL', () => {
  test('bool and integers', async () => {
    await checkTable(
      ['bool', 'int2', 'int4', 'int8', 'oid'],
      [
        ['true', '0', '0', '0', '0'],
        ['false', '32767', '2147483647', '9223372036854775807', '4294967295'],
        ['true', '-32768', '-2147483648', '-9223372036854775808', '12345'],
        ['false', '-1', '-1', '9007199254740993', '1'],
      ],
    );
  });

  test('float4 and float8, with -0, NaN and ±Infinity', async () => {
    const f = (v: string) => `'${v}'`;
    const values = ['0', '-0', '0.1', '1.5', '-123.456', 'NaN', 'Infinity', '-Infinity', '1e21', '1e-7'];
    await checkTable(
      ['float4', 'float8'],
      [
        ...values.map((v) => [f(v), f(v)]),
        [f('3.4028235e38'), f('1.7976931348623157e308')],
        [f('1e-45'), f('5e-324')],
        [f('-1.17549435e-38'), f('2.2250738585072014e-308')],
      ],
    );
  });

  test('numeric: signs, scales, trailing zeros, many digits, NaN and ±Infinity', async () => {
    const values = [
      '0',
      '0.00',
      '-12.3400',
      '100000',
      '1e-5',
      '-0.0000001',
      '12345678901234567890.123456789012345678900',
      '99999999',
      '10000',
      '0.1',
      '-1',
      '1e100',
      '-1e-100',
      '123.456e10',
      '0.0001',
      '1000.0001',
      '9999.9999',
      "'NaN'",
      "'Infinity'",
      "'-Infinity'",
      '0.000000000000000000001230',
    ];
    await checkTable(
      ['numeric', 'numeric(10,2)'],
      values.map((v, i) => [v, ['1', '2.5', '-99999999.99', '0.001', '12.345'][i % 5]!]),
    );
  });

  // Typed snapshot and stream tables write a numeric's text straight from its binary form.
  test('numeric binary → text bytes equals PostgreSQL numeric_out and the Value decoder, scales and weights of every kind', async () => {
    const { rows } = await client.query<{ bin: Buffer; text: string }>(`
      WITH v(x) AS (
        SELECT x::numeric FROM unnest(ARRAY['0', '-0', '0.00', '1', '-1', '9999', '10000', '10001', '0.0001', '0.00001', '-0.000001230',
          '123456789012345678901234567890.123456789', '1e-20', '1e20', '1.5e-7', 'NaN', 'Infinity', '-Infinity',
          '99999999999999999999.99', '100000000', '0.1', '12.50', '-12345.6789', '7.000000']) AS x
        UNION ALL
        SELECT round((random() - 0.5)::numeric * power(10::numeric, g % 30 - 10), g % 17) FROM generate_series(1, 2000) g
        UNION ALL
        SELECT ((g::int8 * 7919) % 100000000) / 100.0 FROM generate_series(1, 500) g
      )
      SELECT numeric_send(x) AS bin, x::text AS text FROM v`);
    const decode = decoderFor('numeric', false);
    const mismatches: string[] = [];
    for (const { bin, text } of rows) {
      const out = new Uint8Array(numericTextBound(bin, 0));
      const end = writeNumericText(bin, 0, out, 0);
      const written = Buffer.from(out.subarray(0, end)).toString('latin1');
      if (written !== text || decode(bin, 0, bin.length) !== text)
        mismatches.push(`${text}: wrote ${written}, decoded ${String(decode(bin, 0, bin.length))}`);
    }
    expect(rows.length).toBeGreaterThan(2500);
    expect(mismatches).toEqual([]);
  });

  test('text, varchar, char(5) padding, name, unicode and escapes', async () => {
    await checkTable(
      ['text', 'varchar(20)', 'char(5)', 'name'],
      [
        ["''", "''", "''", "''"],
        ["'héllo wörld 🎉 中文'", "'ünï'", "'ab'", "'pg_class'"],
        [`'quote "x" back\\slash, comma {}'`, "'a,b'", "'abcde'", "'x'"],
        ["E'tab\\tnewline\\nnul-free\\r'", "' lead'", "' '", "'Ω'"],
        ["repeat('xyz', 100000)", "'v'", "'ä'", "'n'"],
      ],
    );
  });

  test('enum, domain over int4 and arrays of both', async () => {
    const mood = `mood_${randomUUID().slice(0, 8)}`;
    const pos = `posint_${randomUUID().slice(0, 8)}`;
    const rows = await checkTable(
      [mood, pos, `${mood}[]`, `${pos}[]`],
      [
        [`'sad'`, '1', `'{sad,"happy 😀"}'`, `'{1,2,NULL}'`],
        [`'happy 😀'`, '2147483647', `'{}'`, `'{}'`],
      ],
      `CREATE TYPE ${mood} AS ENUM ('sad', 'ok', 'happy 😀'); CREATE DOMAIN ${pos} AS int4 CHECK (VALUE > 0)`,
    );
    expect(rows[0]).toStrictEqual([0, 'sad', 1, ['sad', 'happy 😀'], [1, 2, null]]);
  });

  test('uuid, json, jsonb, bytea', async () => {
    await checkTable(
      ['uuid', 'json', 'jsonb', 'bytea'],
      [
        [
          `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`,
          `'{"a": 1, "a": 2,  "b":[1, 2]}'`,
          `'{"b": {"c": [1, 2, {"d": null}]}, "a": 123456789012345678901234567890.5}'`,
          `'\\x'`,
        ],
        [`'00000000-0000-0000-0000-000000000000'`, `'123456789012345678901234567890'`, `'[]'`, `'\\x00'`],
        [`'ffffffff-ffff-ffff-ffff-ffffffffffff'`, `'"\\u00e9 é"'`, `'"\\u00e9 \\" é"'`, `'\\x00ff00'`],
        [
          `gen_random_uuid()`,
          `'null'`,
          `'{"k": 1e400, "big": 9223372036854775808}'`,
          `decode(repeat('00ff', 50000), 'hex')`,
        ],
        [`'12345678-1234-1234-1234-123456789abc'`, `'[]'`, `'null'`, `'abc'::bytea`],
      ],
    );
  });

  test('date, including BC, far future and ±infinity', async () => {
    const values = [
      '2000-01-01',
      '1970-01-01',
      '1969-12-31',
      '1900-02-28',
      '2024-02-29',
      '0001-01-01',
      '0001-12-31 BC',
      '0044-03-15 BC',
      '4713-01-01 BC',
      '5874897-12-31',
      '10000-01-01',
      'infinity',
      '-infinity',
      '1582-10-04',
    ];
    await checkTable(
      ['date'],
      values.map((v) => [`'${v}'`]),
    );
  });

  test('timestamp and timestamptz: before 1970, microseconds, BC, extremes, ±infinity', async () => {
    const values = [
      '2000-01-01 00:00:00',
      '1999-12-31 23:59:59.999999',
      '2000-01-01 00:00:00.000001',
      '1969-12-31 23:59:59.999999',
      '1970-01-01 00:00:00',
      '1900-01-01 12:34:56.000001',
      '0044-03-15 12:00:00 BC',
      '0001-01-01 00:00:00 BC',
      '4713-11-24 00:00:00 BC',
      '294276-12-31 23:59:59.999999',
      '2024-06-01 12:00:00.5',
      'infinity',
      '-infinity',
      '1677-09-21 00:12:43.145224',
      '2262-04-11 23:47:16.854775',
    ];
    await checkTable(
      ['timestamp', 'timestamp(3)', 'timestamptz'],
      [
        // timestamp(3) rounds the maximum up past the range PostgreSQL accepts on input: leave it out there.
        ...values.map((v) => [`'${v}'`, v.startsWith('294276') ? `'2000-01-01 00:00:00.0005'` : `'${v}'`, `'${v}'`]),
        [`'2024-06-01 12:00:00'`, `'2024-06-01 12:00:00.1239'`, `'2024-06-01 12:00:00+05:30'`],
        [`'2024-06-01 12:00:00'`, `'2024-06-01 12:00:00'`, `'1900-06-01 12:00:00.123456-08:00'`],
        [`'2024-06-01 12:00:00'`, `'2024-06-01 12:00:00'`, `'0044-03-15 01:00:00+03 BC'`],
      ],
    );
  });

  test('time and timetz with odd offsets', async () => {
    await checkTable(
      ['time', 'timetz'],
      [
        [`'00:00:00'`, `'00:00:00+00'`],
        [`'23:59:59.999999'`, `'23:59:59.999999-15:59'`],
        [`'24:00:00'`, `'24:00:00+15:59'`],
        [`'12:34:56.789'`, `'12:00:00+05:30'`],
        [`'00:00:00.000001'`, `'12:00:00-08'`],
        [`'13:00:00'`, `'12:00:00+01:02:03'`],
        [`'13:00:00'`, `'12:00:00.5-00:00:01'`],
      ],
    );
  });

  test('interval: zero, mixed signs, fractions, extremes', async () => {
    const values = [
      '0',
      '1 year 2 months 3 days 4 hours 5 minutes 6.000007 seconds',
      '-1 year -2 months',
      '1 day -1 second',
      '-0.5 seconds',
      '1.5 seconds',
      '-1 year +2 days -3 hours',
      '1 microsecond',
      '-1 microsecond',
      '1 mon -1 day',
      '2562047788 hours 54.775807 seconds',
      '-2562047788 hours -54.775808 seconds',
      '178000000 years',
      '-178000000 years',
      '-2147483648 days',
      '2147483647 days',
      '100000 hours',
      '59 minutes 59.999999 seconds',
      '-1 hours 30 minutes',
      '13 months',
      '-13 months',
      '0.12 seconds',
      '1 week',
    ];
    await checkTable(
      ['interval'],
      values.map((v) => [`'${v}'`]),
    );
  });

  test('arrays: empty, NULL elements, 2-D and 3-D, quoting', async () => {
    await checkTable(
      [
        'int4[]',
        'text[]',
        'int8[]',
        'numeric[]',
        'bool[]',
        'float8[]',
        'varchar(10)[]',
        'char(3)[]',
        'int2[]',
        'oid[]',
        'float4[]',
        'name[]',
      ],
      [
        [`'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`, `'{}'`],
        [
          `'{1,2,NULL}'`,
          `ARRAY['a"b', 'c,d', 'e\\f', 'NULL', NULL, '', ' x ', '{}', 'é🎉']`,
          `'{9223372036854775807,-9223372036854775808,NULL}'`,
          `'{1.50,-0.001,NaN,Infinity,NULL}'`,
          `'{t,f,NULL}'`,
          `'{NaN,Infinity,-Infinity,-0,0.1}'`,
          `'{a,NULL}'`,
          `'{a,abc}'`,
          `'{-32768,32767}'`,
          `'{0,4294967295}'`,
          `'{0.1,NaN}'`,
          `'{pg_class}'`,
        ],
        [
          `'{{1,2},{3,NULL}}'`,
          `'{{a,b},{NULL,"}"}}'`,
          `'{{{1}},{{2}}}'`,
          `'{{1.0},{2.00}}'`,
          `'{{t},{f}}'`,
          `'{{1},{2}}'`,
          `'{{x,y,z}}'`,
          `'{{a},{b}}'`,
          `'{{1,2,3},{4,5,6}}'`,
          `'{{1}}'`,
          `'{{1.5,2.5}}'`,
          `'{{a,b}}'`,
        ],
      ],
    );
  });

  test('arrays of date/time types, uuid, json, jsonb, bytea', async () => {
    await checkTable(
      [
        'date[]',
        'timestamp[]',
        'timestamptz[]',
        'time[]',
        'timetz[]',
        'interval[]',
        'uuid[]',
        'json[]',
        'jsonb[]',
        'bytea[]',
      ],
      [
        [
          `'{2000-01-01,"0044-03-15 BC",infinity,NULL}'`,
          `'{"1969-12-31 23:59:59.999999","0044-03-15 12:00:00 BC",-infinity}'`,
          `'{"2024-06-01 12:00:00+05:30",NULL}'`,
          `'{00:00:00,24:00:00}'`,
          `'{"12:00:00+05:30","12:00:00-08:00:01"}'`,
          `'{P1Y-2M,PT-0.5S,PT0S,NULL}'`,
          `'{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11,NULL}'`,
          `ARRAY['{"a": [1, "x,y"]}', 'null']::json[]`,
          `ARRAY['{"a": [1, "x,y"]}', '"\\\\"', NULL]::jsonb[]`,
          `ARRAY['\\x00ff'::bytea, '', NULL]`,
        ],
        [
          `'{{2000-01-01},{2000-01-02}}'`,
          `'{}'`,
          `'{}'`,
          `'{}'`,
          `'{}'`,
          `'{{P1D,PT1H}}'`,
          `'{}'`,
          `'{}'`,
          `'{}'`,
          `'{{"\\\\x00"},{"\\\\x"}}'`,
        ],
      ],
    );
  });

  test('random values across the whole range of date, time, interval, numeric and float types', async () => {
    const table = tableName();
    const rnd = (lo: number, hi: number) => `(${lo} + floor(random() * ${hi - lo + 1}))`;
    await client.query('SELECT setseed(0.42)');
    await client.query(`CREATE TABLE ${table} AS
      SELECT i AS id,
             date '2000-01-01' + ${rnd(-2451545, 2145031948)}::int4 AS d,
             timestamp '2000-01-01' + ${rnd(-2451545, 106751990)}::int4 * interval '1 day' + ${rnd(0, 86399999999)}::int8 * interval '1 microsecond' AS ts,
             timestamptz '2000-01-01Z' + ${rnd(-2451544, 106751990)}::int4 * interval '1 day' + ${rnd(0, 86399999999)}::int8 * interval '1 microsecond' AS tstz,
             timestamp '2000-01-01' + ${rnd(-200000, 200000)}::int4 * interval '1 day' + ${rnd(0, 86399999999)}::int8 * interval '1 microsecond' AS ts_near,
             time '00:00' + ${rnd(0, 86400000000)}::int8 * interval '1 microsecond' AS t,
             format('%s%s%s:%s:%s', time '00:00' + ${rnd(0, 86399999999)}::int8 * interval '1 microsecond',
                    CASE WHEN random() < 0.5 THEN '+' ELSE '-' END, ${rnd(0, 15)}, ${rnd(0, 59)},
                    CASE WHEN random() < 0.8 THEN '00' ELSE ${rnd(0, 59)}::text END)::timetz AS ttz,
             make_interval(0, ${rnd(-178000000, 178000000)}::int4 * (i % 2), 0, ${rnd(-100000, 100000)}::int4 * (i % 3 % 2))
               + ${rnd(-9e17, 9e17)}::int8 / (10 ^ (i % 12))::int8 * interval '1 microsecond' AS iv,
             round((random() - 0.5)::numeric * 10::numeric ^ ${rnd(-30, 30)}::int, ${rnd(0, 40)}::int) AS n,
             ((random() - 0.5) * 10 ^ ${rnd(-300, 300)})::float8 AS f8,
             ((random() - 0.5) * 10 ^ ${rnd(-40, 38)})::float4 AS f4
        FROM generate_series(1, 3000) i`);
    await checkExistingTable(table, 150);
  });

  test('a COPY of many rows decodes the same in any chunking', async () => {
    const table = tableName();
    await client.query(`CREATE TABLE ${table} AS
      SELECT i::int4 AS id, (i * 7919)::int8 AS n, md5(i::text) AS s, i % 3 = 0 AS b,
             CASE WHEN i % 5 = 0 THEN NULL ELSE i / 7.0 END AS x, timestamp '2000-01-01' + i * interval '1 second' AS ts
        FROM generate_series(1, 20000) i`);
    const columns = await tableColumns(table);
    const chunks = await copyChunks(`SELECT * FROM ${table} ORDER BY id`);
    const rows = parseChunks(chunks, columns);
    expect(rows.length).toBe(20000);
    const { rows: text } = await client.query(`SELECT md5('9') AS s, (9 / 7.0)::text AS x`);
    expect(rows[8]).toStrictEqual([9, 71271n, text[0].s, true, text[0].x, '2000-01-01T00:00:09.000000']);
    expect(rows[9]![4]).toBeNull();
    expect(parseChunks(resplit(chunks, [1]), columns)).toStrictEqual(rows);
    expect(parseChunks(resplit(chunks, [65536 + 13, 5]), columns)).toStrictEqual(rows);
  });
});

describe('CopyBinaryParser', () => {
  test('rejects a stream that is not binary COPY, a truncated one, and a column count mismatch', async () => {
    const table = tableName();
    await client.query(`CREATE TABLE ${table} AS SELECT 1::int4 AS a, 'x'::text AS b`);
    const chunks = await copyChunks(`SELECT * FROM ${table}`);
    const all = Buffer.concat(chunks);
    const decoders = [decoderFor('int4', false), decoderFor('text', false)];

    expect(() => new CopyBinaryParser(decoders).push(Buffer.from('1\tx\n' + 'x'.repeat(30)), () => {})).toThrow(
      /PGCOPY signature/,
    );

    const truncated = new CopyBinaryParser(decoders);
    truncated.push(all.subarray(0, all.length - 3), () => {});
    expect(() => truncated.end()).toThrow(/before its trailer/);

    const header = new CopyBinaryParser(decoders);
    header.push(all.subarray(0, 10), () => {});
    expect(() => header.end()).toThrow(/inside its header/);

    expect(() => new CopyBinaryParser([decoders[0]!]).push(all, () => {})).toThrow(/has 2 fields but 1 decoders/);

    const after = new CopyBinaryParser(decoders);
    expect(() => after.push(Buffer.concat([all, Buffer.from([0])]), () => {})).toThrow(/after its trailer/);

    const ok = new CopyBinaryParser(decoders);
    const rows: Value[][] = [];
    ok.push(all, (v) => rows.push(v));
    ok.end();
    expect(rows).toStrictEqual([[1, 'x']]);
  });
});

describe('PgTypeResolver', () => {
  test('knows builtin OIDs without a query', () => {
    const r = new PgTypeResolver();
    expect(r.resolveSync(1007)).toEqual({ type: 'int4', array: true });
    expect(r.resolveSync(1042)).toEqual({ type: 'text', array: false });
    expect(r.resolveSync(3807)).toEqual({ type: 'jsonb', array: true });
    expect(r.resolveSync(600)).toBeUndefined();
  });

  test('every builtin OID matches pg_type', async () => {
    const r = new PgTypeResolver();
    const { rows } = await client.query(
      `SELECT oid::int8 AS oid, typname FROM pg_type WHERE oid < 16384 AND typname IN
        ('bool','bytea','name','int8','int2','int4','text','oid','json','float4','float8','bpchar','varchar','date','time',
         'timestamp','timestamptz','interval','timetz','numeric','uuid','jsonb')`,
    );
    const alias: Record<string, string> = { name: 'text', bpchar: 'text', varchar: 'text' };
    expect(rows.length).toBe(22);
    for (const { oid, typname } of rows) {
      expect(r.resolveSync(Number(oid))).toEqual({ type: alias[typname] ?? typname, array: false });
      const { rows: arr } = await client.query(`SELECT typarray::int8 AS a FROM pg_type WHERE oid = $1`, [oid]);
      expect(r.resolveSync(Number(arr[0].a))).toEqual({ type: alias[typname] ?? typname, array: true });
    }
  });

  test('resolves enums, domains, domains over arrays and arrays of domains from the catalog, and caches them', async () => {
    const id = randomUUID().slice(0, 8);
    await client.query(
      `CREATE TYPE color_${id} AS ENUM ('red'); CREATE DOMAIN d_${id} AS int8; CREATE DOMAIN da_${id} AS text[];
       CREATE DOMAIN dd_${id} AS d_${id}`,
    );
    const oid = async (name: string) =>
      Number((await client.query(`SELECT $1::regtype::oid::int8 AS o`, [name])).rows[0].o);
    const r = new PgTypeResolver();
    let queries = 0;
    const counted = (sql: string, params: unknown[]) => (queries++, client.query(sql, params));
    expect(await r.resolve(await oid(`color_${id}`), counted)).toEqual({ type: 'enum', array: false });
    expect(await r.resolve(await oid(`color_${id}[]`), counted)).toEqual({ type: 'enum', array: true });
    expect(await r.resolve(await oid(`d_${id}`), counted)).toEqual({ type: 'int8', array: false });
    expect(await r.resolve(await oid(`dd_${id}`), counted)).toEqual({ type: 'int8', array: false });
    expect(await r.resolve(await oid(`d_${id}[]`), counted)).toEqual({ type: 'int8', array: true });
    expect(await r.resolve(await oid(`da_${id}`), counted)).toEqual({ type: 'text', array: true });
    const before = queries;
    expect(await r.resolve(await oid(`color_${id}[]`), counted)).toEqual({ type: 'enum', array: true });
    expect(queries).toBe(before);
    expect(r.resolveSync(await oid(`dd_${id}`))).toEqual({ type: 'int8', array: false });
  });

  test('names unsupported types and the fix', async () => {
    const id = randomUUID().slice(0, 8);
    await client.query(`CREATE TYPE pair_${id} AS (a int4, b text)`);
    const r = new PgTypeResolver();
    for (const name of ['point', 'int4range', `pair_${id}`, 'inet', 'point[]']) {
      const oid = Number((await client.query(`SELECT $1::regtype::oid::int8 AS o`, [name])).rows[0].o);
      await expect(r.resolve(oid, query)).rejects.toThrow(
        /is not supported by featureflow; cast the column .* in a view, or leave the column out/,
      );
    }
    await expect(r.resolve(999_999_999, query)).rejects.toThrow(/does not exist/);
  });
});
