/**
 * The JSON forms the serving API reads and writes: entity keys converted to their key columns'
 * types (so `"42"` in a URL finds the entity an int8 `42n` was stored under), feature values and
 * positions as text.
 */
import type { FeatureType } from '../features/feature-types.js';
import type { StoredFeatureValue } from '../features/feature-values.js';
import type { FeatureView } from '../features/feature-view.js';
import { formatMicros } from '../features/instant.js';
import { formatPosition, type ColumnSchema, type Position, type Row, type TableSchema, type Value } from '../types.js';
import { valueDecoder } from '../value-json.js';
import { badRequest } from './serving-errors.js';

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INTEGER = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$|^(NaN|[+-]?Infinity)$/i;
const NON_FINITE: Record<string, number> = {
  nan: NaN,
  infinity: Infinity,
  '+infinity': Infinity,
  '-infinity': -Infinity,
};

/** A number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (JSON has no such numbers). */
export function numberJson(n: number): Json {
  return Number.isFinite(n) ? n : String(n);
}

/** A bigint as a JSON number while it is exact, else as its decimal text. */
function bigintJson(b: bigint): Json {
  return b <= MAX_SAFE && b >= -MAX_SAFE ? Number(b) : b.toString();
}

/** The JSON form of a column value (an entity key's part): int8 as a number when exact, bytes as `"\\x…"`. */
export function valueJson(value: Value): Json {
  switch (typeof value) {
    case 'bigint':
      return bigintJson(value);
    case 'number':
      return numberJson(value);
    case 'object':
      if (value === null) return null;
      if (Array.isArray(value)) return value.map(valueJson);
      return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
    default:
      return value;
  }
}

/** The JSON form of a stored feature value: tensors as flat number arrays, timestamps as ISO 8601 (µs, UTC). */
export function featureJson(type: FeatureType, value: StoredFeatureValue): Json {
  if (value === null) return null;
  if (type.kind === 'tensor') return Array.from(value as ArrayLike<number>, numberJson);
  switch (type.dtype) {
    case 'timestamp':
      return formatMicros(value as bigint);
    case 'int64':
      return bigintJson(value as bigint);
    case 'float32':
    case 'float64':
      return numberJson(value as number);
    default:
      return value as Json;
  }
}

/** A view's features by name (declaration order), in JSON form. */
export function featuresJson(view: FeatureView, values: readonly StoredFeatureValue[]): Record<string, Json> {
  const out: Record<string, Json> = {};
  let i = 0;
  for (const [name, type] of Object.entries(view.features)) out[name] = featureJson(type, values[i++] ?? null);
  return out;
}

/** `X/Y`, or null. */
export function positionJson(position: Position | null): string | null {
  return position === null ? null : formatPosition(position);
}

/** An ISO 8601 instant of µs since the epoch, or null. */
export function timeJson(micros: bigint | null): string | null {
  return micros === null ? null : formatMicros(micros);
}

/** One part of a key, from text (a URL) or JSON, as its key column's type; a TypeError says why not. */
function keyPart(column: ColumnSchema | undefined, raw: unknown, fromText: boolean): Value {
  const text = typeof raw === 'string' ? raw : null;
  if (!column) {
    // The source's schema is not known yet (no change of the table seen): integers as numbers
    // (entity identity does not tell an int4 1 from an int8 1n), anything else as it came.
    if (text !== null && fromText && INTEGER.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
    if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean') return raw;
    throw new TypeError('must be a string, a number or a boolean');
  }
  if (column.array) {
    if (Array.isArray(raw)) return valueDecoder(column)(raw);
    throw new TypeError(`is of the array column ${column.name}: give it as a JSON array (POST /features)`);
  }
  switch (column.type) {
    case 'int2':
    case 'int4':
    case 'oid': {
      const n = text !== null && INTEGER.test(text) ? Number(text) : typeof raw === 'number' ? raw : NaN;
      if (Number.isSafeInteger(n)) return n;
      throw new TypeError(`must be an integer (column ${column.name} is ${column.type})`);
    }
    case 'int8':
      if ((text !== null && INTEGER.test(text)) || (typeof raw === 'number' && Number.isSafeInteger(raw)))
        return BigInt(raw as string | number);
      throw new TypeError(`must be an integer (column ${column.name} is int8; beyond 2^53, give it as a string)`);
    case 'float4':
    case 'float8':
      if (typeof raw === 'number') return raw;
      if (text !== null && FLOAT.test(text)) return NON_FINITE[text.toLowerCase()] ?? Number(text);
      throw new TypeError(`must be a number (column ${column.name} is ${column.type})`);
    case 'numeric':
      if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
      if (text !== null && FLOAT.test(text)) return text;
      throw new TypeError(`must be a decimal number (column ${column.name} is numeric)`);
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (text === 'true' || text === 't') return true;
      if (text === 'false' || text === 'f') return false;
      throw new TypeError(`must be true or false (column ${column.name} is bool)`);
    case 'bytea':
      if (text !== null && /^\\x([0-9a-fA-F]{2})*$/.test(text)) return Buffer.from(text.slice(2), 'hex');
      throw new TypeError(`must be bytes as "\\x" and hex digits (column ${column.name} is bytea)`);
    case 'uuid':
      if (text !== null) return text.toLowerCase();
      throw new TypeError(`must be a string (column ${column.name} is uuid)`);
    default:
      if (text !== null) return text;
      throw new TypeError(`must be a string (column ${column.name} is ${column.type})`);
  }
}

function keyColumns(view: FeatureView, schema: TableSchema | undefined): (ColumnSchema | undefined)[] {
  return view.entity.keys.map((k) => schema?.columns.find((c) => c.name === k));
}

/**
 * An entity key from its text form in a URL: the parts comma-separated in the order of
 * `entity.keys`, each converted to its key column's type. Fails with FF_SERVE_BAD_REQUEST naming `field`.
 */
export function keyFromText(view: FeatureView, text: string, schema: TableSchema | undefined, field: string): Value[] {
  const parts = text.split(',');
  const keys = view.entity.keys;
  if (parts.length !== keys.length) {
    throw badRequest(
      field,
      `must have ${keys.length} comma-separated part${keys.length === 1 ? '' : 's'} (${keys.join(', ')}), got ${parts.length}`,
    );
  }
  const columns = keyColumns(view, schema);
  return parts.map((part, i) => {
    try {
      return keyPart(columns[i], part, true);
    } catch (error) {
      throw badRequest(field, `part ${i + 1} (${keys[i]}) ${(error as Error).message}`);
    }
  });
}

/** An entity key from JSON (one value per key column, in the order of `entity.keys`); fails naming `field`. */
export function keyFromJson(
  view: FeatureView,
  parts: readonly unknown[],
  schema: TableSchema | undefined,
  field: string,
): Value[] {
  const keys = view.entity.keys;
  if (parts.length !== keys.length) {
    throw badRequest(
      field,
      `must have ${keys.length} value${keys.length === 1 ? '' : 's'} (${keys.join(', ')}), got ${parts.length}`,
    );
  }
  const columns = keyColumns(view, schema);
  return parts.map((part, i) => {
    try {
      return keyPart(columns[i], part, false);
    } catch (error) {
      throw badRequest(`${field}/${i}`, `(${keys[i]}) ${(error as Error).message}`);
    }
  });
}

/**
 * A source row from JSON, in the exact forms the ingest gives a transform (int8 as bigint, bytea as
 * bytes from `"\\x…"` or an array of byte values, non-finite floats from their names). Fails naming
 * `field` for a column the table lacks or a value of the wrong kind.
 */
export function rowFromJson(schema: TableSchema, json: Readonly<Record<string, unknown>>, field: string): Row {
  const row: Row = {};
  for (const [name, raw] of Object.entries(json)) {
    const column = schema.columns.find((c) => c.name === name);
    if (!column) {
      throw badRequest(
        `${field}/${name}`,
        `is not a column of ${schema.table} (its columns: ${schema.columns.map((c) => c.name).join(', ')})`,
      );
    }
    row[name] = raw === null ? null : columnValue(column, raw, `${field}/${name}`);
  }
  return row;
}

function columnValue(column: ColumnSchema, raw: unknown, field: string): Value {
  const wrong = (expected: string) =>
    badRequest(field, `must be ${expected} (column ${column.name} is ${column.type}${column.array ? '[]' : ''})`);
  if (column.array) {
    if (!Array.isArray(raw)) throw wrong('an array');
    return valueDecoder(column)(raw);
  }
  switch (column.type) {
    case 'int2':
    case 'int4':
    case 'oid':
      if (typeof raw === 'number' && Number.isInteger(raw)) return raw;
      throw wrong('an integer');
    case 'int8':
      if ((typeof raw === 'number' && Number.isSafeInteger(raw)) || (typeof raw === 'string' && INTEGER.test(raw)))
        return BigInt(raw);
      throw wrong('an integer (a string beyond 2^53)');
    case 'float4':
    case 'float8':
      if (typeof raw === 'number') return raw;
      if (typeof raw === 'string' && raw.toLowerCase() in NON_FINITE) return NON_FINITE[raw.toLowerCase()]!;
      throw wrong('a number');
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      throw wrong('true or false');
    case 'bytea':
      if (typeof raw === 'string' && /^\\x([0-9a-fA-F]{2})*$/.test(raw)) return Buffer.from(raw.slice(2), 'hex');
      if (Array.isArray(raw) && raw.every((b) => Number.isInteger(b) && b >= 0 && b <= 255))
        return Uint8Array.from(raw as number[]);
      throw wrong('"\\x" and hex digits, or an array of byte values');
    case 'numeric':
      if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
      if (typeof raw === 'string') return raw;
      throw wrong('a decimal number');
    default:
      if (typeof raw === 'string') return raw;
      throw wrong('a string');
  }
}
