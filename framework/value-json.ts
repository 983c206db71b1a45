/**
 * The exact JSON form of rows in the change log, and its inverse given the column schema.
 *
 * JSON has no bigint, bytes or non-finite numbers, so: bigint → decimal string, bytes → `"\\x…"`
 * (lower-case hex, as PostgreSQL prints bytea), NaN/±Infinity → `"NaN"`, `"Infinity"`, `"-Infinity"`,
 * -0 → the JSON number `-0` (which `JSON.parse` keeps). Every other value is its plain JSON form; json
 * and jsonb values are strings holding their text. Decoding needs the schema to tell a bigint or a
 * bytea from a string.
 */
import type { ColumnSchema, Row, Value } from './types.js';

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Characters JSON.stringify escapes: `"`, `\\`, control characters and (well-formed JSON.stringify)
 * lone surrogates; any surrogate sends the string to JSON.stringify, which knows pairs from lone ones.
 */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** An escaped backslash, or a `\u00XX` escape with a hex letter. */
const HEX_ESCAPE = /\\\\|\\u00[01][a-f]/g;

/**
 * JSON.stringify of a string, with the hex letters of `\u00XX` escapes upper-case (as DuckDB's
 * `to_json` writes them, so keys printed by either compare equal); most strings need no escaping and
 * are only quoted.
 */
function quote(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return '"' + s + '"';
  const json = JSON.stringify(s);
  return json.includes('\\u00')
    ? json.replace(HEX_ESCAPE, (m) => (m.length === 2 ? m : m.toUpperCase().replace('\\U', '\\u')))
    : json;
}

function encodeNumber(n: number): string {
  if (Number.isFinite(n)) return n === 0 && 1 / n < 0 ? '-0' : String(n);
  return Number.isNaN(n) ? '"NaN"' : n > 0 ? '"Infinity"' : '"-Infinity"';
}

function hex(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buf.toString('hex');
}

/** The JSON text of one value. */
export function encodeValue(value: Value): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return encodeNumber(value);
    case 'bigint':
      return '"' + value.toString() + '"';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + encodeValue(value[i]!);
        return out + ']';
      }
      if (value instanceof Uint8Array) return '"\\\\x' + hex(value) + '"';
  }
  throw new TypeError(`cannot encode ${Object.prototype.toString.call(value)} as a featureflow value`);
}

/** `"name":` per property name seen, bounded (names come from table schemas, so they repeat). */
const keyPrefixes = new Map<string, string>();

/** `"name":`, the JSON text that starts a property. */
export function keyPrefix(name: string): string {
  let prefix = keyPrefixes.get(name);
  if (prefix === undefined) {
    prefix = JSON.stringify(name) + ':';
    if (keyPrefixes.size < 10_000) keyPrefixes.set(name, prefix);
  }
  return prefix;
}

/** The JSON object text of a row; properties that are `undefined` are left out. */
export function encodeRow(row: Row): string {
  let out = '{';
  for (const name in row) {
    const value = row[name];
    if (value === undefined) continue;
    out += (out.length === 1 ? '' : ',') + keyPrefix(name) + encodeValue(value);
  }
  return out + '}';
}

/** How {@link rowEncoder} writes a column: fast paths for its usual JS type, else {@link encodeValue}. */
const enum Kind {
  Any,
  Number,
  Int8,
  Bool,
  String,
}

function kindOf(column: ColumnSchema): Kind {
  if (column.array) return Kind.Any;
  switch (column.type) {
    case 'int2':
    case 'int4':
    case 'oid':
    case 'float4':
    case 'float8':
      return Kind.Number;
    case 'int8':
      return Kind.Int8;
    case 'bool':
      return Kind.Bool;
    default:
      return Kind.String;
  }
}

/**
 * An encoder of rows of the given columns, with each `"name":` prefix computed once. It writes the
 * listed columns present in the row (in column order) and ignores other properties; its output
 * equals {@link encodeRow} of a row holding exactly those columns in that order.
 */
export function rowEncoder(columns: readonly ColumnSchema[]): (row: Row) => string {
  const names = columns.map((c) => c.name);
  const kinds = columns.map(kindOf);
  const first = names.map((n) => JSON.stringify(n) + ':');
  const rest = first.map((p) => ',' + p);
  const n = columns.length;
  return (row) => {
    let out = '{';
    let sep = first;
    for (let i = 0; i < n; i++) {
      const value = row[names[i]!];
      if (value === undefined) continue;
      let text: string;
      if (value === null) text = 'null';
      else {
        switch (kinds[i]) {
          case Kind.String:
            text = typeof value === 'string' ? quote(value) : encodeValue(value);
            break;
          case Kind.Number:
            text = typeof value === 'number' ? encodeNumber(value) : encodeValue(value);
            break;
          case Kind.Int8:
            text = typeof value === 'bigint' ? '"' + value + '"' : encodeValue(value);
            break;
          case Kind.Bool:
            text = value === true ? 'true' : value === false ? 'false' : encodeValue(value);
            break;
          default:
            text = encodeValue(value);
        }
      }
      out += sep[i]! + text;
      sep = rest;
    }
    return out + '}';
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding

type ValueDecoder = (parsed: unknown) => Value;

const identity: ValueDecoder = (v) => v as Value;

function decodeFloat(v: unknown): Value {
  if (typeof v !== 'string') return v as Value;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new TypeError(`not a float in the change log: ${JSON.stringify(v)}`);
}

function decodeInt8(v: unknown): Value {
  if (typeof v === 'string' || typeof v === 'number') return BigInt(v);
  return v as Value;
}

function decodeBytea(v: unknown): Value {
  if (typeof v !== 'string') return v as Value;
  if (!v.startsWith('\\x'))
    throw new TypeError(`not a bytea in the change log (expected "\\\\x…"): ${JSON.stringify(v.slice(0, 20))}`);
  return Buffer.from(v.slice(2), 'hex');
}

function scalarDecoder(type: string): ValueDecoder {
  switch (type) {
    case 'int8':
      return decodeInt8;
    case 'float4':
    case 'float8':
      return decodeFloat;
    case 'bytea':
      return decodeBytea;
    default:
      return identity;
  }
}

function arrayDecoder(element: ValueDecoder): ValueDecoder {
  const decode: ValueDecoder = (v) => {
    if (v === null) return null;
    if (Array.isArray(v)) return v.map(decode);
    return element(v);
  };
  return decode;
}

/** The decoder of one column's parsed JSON value (see {@link decodeRow}); never null in, never null out. */
export function valueDecoder(column: Pick<ColumnSchema, 'type' | 'array'>): (parsed: unknown) => Value {
  const scalar = scalarDecoder(column.type);
  if (scalar === identity) return identity;
  return column.array ? arrayDecoder(scalar) : scalar;
}

/** A decoder of JSON rows of the given columns; see {@link decodeRow}. */
export function rowDecoder(columns: readonly ColumnSchema[]): (json: string) => Row {
  const decoders = new Map<string, ValueDecoder>();
  for (const c of columns) {
    const scalar = scalarDecoder(c.type);
    if (scalar !== identity) decoders.set(c.name, c.array ? arrayDecoder(scalar) : scalar);
  }
  return (json) => {
    const row = JSON.parse(json) as Record<string, unknown>;
    for (const [name, decode] of decoders) {
      const v = row[name];
      if (v !== undefined && v !== null) row[name] = decode(v);
    }
    return row as Row;
  };
}

const decoderCache = new WeakMap<readonly ColumnSchema[], (json: string) => Row>();

/**
 * Restores the exact values of a row written by {@link encodeRow} or {@link rowEncoder}: int8 →
 * bigint, bytea → Buffer, float `"NaN"`/`"Infinity"`/`"-Infinity"` → numbers, arrays by element type.
 * Columns absent from the JSON stay absent; properties not in `columns` are kept as parsed.
 * The decoder compiled for a `columns` array is cached (by identity).
 */
export function decodeRow(json: string, columns: readonly ColumnSchema[]): Row {
  let decode = decoderCache.get(columns);
  if (!decode) decoderCache.set(columns, (decode = rowDecoder(columns)));
  return decode(json);
}

// ---------------------------------------------------------------------------------------------
// Back to PostgreSQL

/** Our timestamp forms use `T` and `Z BC`; PostgreSQL's input wants a space and `+00 BC`. */
function pgDateTime(v: string, column: ColumnSchema): string {
  if (column.type !== 'timestamp' && column.type !== 'timestamptz') return v;
  return v.replace('T', ' ').replace(/Z( BC)?$/, '+00$1');
}

function pgScalar(value: Value, column: ColumnSchema): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'number':
      return Number.isFinite(value) ? (value === 0 && 1 / value < 0 ? '-0' : String(value)) : String(value);
    case 'boolean':
      return value;
    case 'string':
      return pgDateTime(value, column);
  }
  if (value instanceof Uint8Array)
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`not a scalar value for column ${column.name}`);
}

/** An element of an array literal: NULL, or double-quoted with `"` and `\` escaped. */
function arrayElement(value: Value, column: ColumnSchema): string {
  if (value === null) return 'NULL';
  if (Array.isArray(value)) return arrayLiteral(value, column);
  const scalar = pgScalar(value, column);
  const text = Buffer.isBuffer(scalar) ? '\\x' + scalar.toString('hex') : String(scalar);
  return '"' + text.replace(/[\\"]/g, '\\$&') + '"';
}

function arrayLiteral(values: Value[], column: ColumnSchema): string {
  return '{' + values.map((v) => arrayElement(v, column)).join(',') + '}';
}

/**
 * A node-postgres query parameter for `value`, to be used with an explicit cast (`$1::<type>`):
 * bigint and numbers as text (NaN, ±Infinity and -0 spelled out), bytes as a Buffer, timestamps in
 * PostgreSQL's input form, arrays as an array literal.
 */
export function toPgParam(value: Value, column: ColumnSchema): unknown {
  if (Array.isArray(value)) return arrayLiteral(value, column);
  return pgScalar(value, column);
}
