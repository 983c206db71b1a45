import {
  ARRAY,
  BIGINT,
  BOOLEAN,
  DOUBLE,
  FLOAT,
  INTEGER,
  SMALLINT,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBType,
} from '@duckdb/node-api';
import { duckdbTypeName, type FeatureType } from '../../../framework/features/feature-types.js';
import type { ColumnSchema, Value } from '../../../framework/types.js';
import { encodeValue } from '../../../framework/value-json.js';
import { ValidityMask, type ChunkColumn } from '../chunk-columns.js';

/** How one column of a history table is typed, created and filled in data chunks. */
export interface ColumnCodec {
  /** SQL type for CREATE TABLE. */
  readonly sql: string;
  readonly duck: DuckDBType;
  /** The chunk column of `values[start…end)` (null or undefined is NULL); valid until the next call. */
  column(values: readonly unknown[], start: number, end: number): ChunkColumn;
}

/** A stored entity key column (its SQL type comes from the source column's PostgreSQL type). */
export interface KeyColumn {
  readonly name: string;
  readonly sql: string;
}

type Fixed = { new (length: number): ArrayBufferView & { [i: number]: number | bigint } };

/** A fixed-width column: a typed array, `convert` turning each non-null value into its element. */
function fixed(
  sql: string,
  duck: DuckDBType,
  Array_: Fixed,
  convert: (v: unknown) => number | bigint = (v) => v as number,
): ColumnCodec {
  return {
    sql,
    duck,
    column(values, start, end) {
      const n = end - start;
      const data = new Array_(n);
      const validity = new ValidityMask(n);
      for (let i = 0; i < n; i++) {
        const v = values[start + i];
        if (v === null || v === undefined) validity.setNull(i);
        else data[i] = convert(v);
      }
      return { kind: 'fixed', data, validity: validity.bytes };
    },
  };
}

function strings(convert: (v: unknown) => string = (v) => v as string): ColumnCodec {
  return {
    sql: 'VARCHAR',
    duck: VARCHAR,
    column(values, start, end) {
      const out = new Array<string | null>(end - start);
      for (let i = start; i < end; i++) {
        const v = values[i];
        out[i - start] = v === null || v === undefined ? null : convert(v);
      }
      return { kind: 'values', values: out };
    },
  };
}

const toBigInt = (v: unknown) => (typeof v === 'bigint' ? v : BigInt(v as number));
const toFlag = (v: unknown) => (v ? 1 : 0);

/** The text form of a key value stored as VARCHAR. */
function keyText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  return encodeValue(v as Value);
}

/** Codec of an entity key column from its source column: integers, floats and booleans keep their type; the rest is text. */
export function keyCodec(column: ColumnSchema): ColumnCodec {
  if (!column.array) {
    switch (column.type) {
      case 'int2':
        return fixed('SMALLINT', SMALLINT, Int16Array);
      case 'int4':
        return fixed('INTEGER', INTEGER, Int32Array);
      case 'int8':
      case 'oid':
        return fixed('BIGINT', BIGINT, BigInt64Array, toBigInt);
      case 'float4':
        return fixed('FLOAT', FLOAT, Float32Array);
      case 'float8':
        return fixed('DOUBLE', DOUBLE, Float64Array);
      case 'bool':
        return fixed('BOOLEAN', BOOLEAN, Uint8Array, toFlag);
    }
  }
  return strings(keyText);
}

/** Codec of a feature column (values in their stored form, see `StoredFeatureValue`). */
export function featureCodec(type: FeatureType): ColumnCodec {
  const sql = duckdbTypeName(type);
  if (type.kind === 'tensor') {
    const [element, Array_] =
      type.dtype === 'float32'
        ? [FLOAT, Float32Array]
        : type.dtype === 'float64'
          ? [DOUBLE, Float64Array]
          : [INTEGER, Int32Array];
    const size = type.size;
    // One buffer for every chunk (the chunk copies it): a chunk of 784-float tensors is 6 MB, and
    // a new one per chunk waited for the garbage collector.
    let scratch = new Array_(0);
    return {
      sql,
      duck: ARRAY(element, size),
      column(values, start, end) {
        const n = end - start;
        if (scratch.length < n * size) scratch = new Array_(n * size);
        const elements = scratch.subarray(0, n * size);
        const validity = new ValidityMask(n);
        for (let i = 0; i < n; i++) {
          const v = values[start + i] as ArrayLike<number> | null | undefined;
          if (v === null || v === undefined) {
            validity.setNull(i);
            elements.fill(0, i * size, (i + 1) * size);
          } else elements.set(v, i * size);
        }
        return { kind: 'array', elements, validity: validity.bytes };
      },
    };
  }
  switch (type.dtype) {
    case 'float32':
      return fixed(sql, FLOAT, Float32Array);
    case 'float64':
      return fixed(sql, DOUBLE, Float64Array);
    case 'int32':
      return fixed(sql, INTEGER, Int32Array);
    case 'int64':
      return fixed(sql, BIGINT, BigInt64Array, toBigInt);
    case 'bool':
      return fixed(sql, BOOLEAN, Uint8Array, toFlag);
    case 'text':
      return strings();
    case 'timestamp':
      // Stored values of timestamps are microseconds since the epoch, as TIMESTAMPTZ holds them.
      return fixed(sql, TIMESTAMPTZ, BigInt64Array);
  }
}

/** The history columns every view's base table (`<table>__rows`, see feature-layout.ts) ends with, in order. */
export const HISTORY_COLUMNS: readonly (ColumnCodec & { readonly name: string })[] = [
  { name: 'valid_from', ...fixed('TIMESTAMPTZ NOT NULL', TIMESTAMPTZ, BigInt64Array) },
  { name: 'lsn', ...fixed('UBIGINT NOT NULL', UBIGINT, BigUint64Array) },
  { name: 'op', ...strings(), sql: 'VARCHAR NOT NULL' },
  { name: 'deleted', ...fixed('BOOLEAN NOT NULL', BOOLEAN, Uint8Array, toFlag) },
  { name: 'seq', ...fixed('BIGINT NOT NULL', BIGINT, BigInt64Array) },
];
