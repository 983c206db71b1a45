/**
 * Rows column-wise: how a source hands rows (a snapshot's reads, the stream's inserts, updates and
 * deletes) to the stores without making a {@link Change} (and a JS value per field) for every row.
 * A source fills one {@link RowColumn} per table column, in the layout {@link columnKind} gives for
 * the column's type; a store writes them to typed storage in bulk, and `column-values.ts` reads
 * values back. Every side agrees on the layout through this module only.
 */
import type { ColumnSchema } from './types.js';

/**
 * How one column is laid out:
 * - fixed width, little-endian, one element per row: `int16`, `int32`, `uint32` (oid), `int64`,
 *   `float32`, `float64`, `bool` (one byte, 0 or 1), `date` (int32 days since 1970-01-01),
 *   `timestamp`/`timestamptz` (int64 µs since 1970-01-01 00:00, UTC for timestamptz), `time` (int64
 *   µs since midnight, 24:00:00 included), `timetz` (one int64: the µs since midnight times 2^24
 *   plus {@link TIMETZ_OFFSET_MAX} minus the zone's offset east of UTC in seconds) and `interval`
 *   (16 bytes: int32 months, int32 days, int64 µs);
 * - `text`: UTF-8 bytes of the value as the source's Value form has it (text, enum); `json`: the
 *   same for a JSON document's text (json exactly as written, jsonb as the source normalises it),
 *   which a store may keep in a JSON type; `plain-text`: the same for values whose JSON form needs no
 *   escaping (numeric, uuid); `bytes`: a bytea's bytes;
 * - `list`: a one-dimensional array, its elements one after another in the layout of the element type
 *   ({@link ListColumn});
 * - `value`: anything else (a float in a key), as the JSON text of its Value (`encodeValue`).
 */
export type ColumnKind =
  | 'int16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'float32'
  | 'float64'
  | 'bool'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'time'
  | 'timetz'
  | 'interval'
  | 'text'
  | 'json'
  | 'plain-text'
  | 'bytes'
  | 'list'
  | 'value';

/** The largest zone offset (seconds, either way) the `timetz` layout holds: 15:59:59. */
export const TIMETZ_OFFSET_MAX = 16 * 60 * 60 - 1;

const SCALAR_KINDS: Readonly<Record<string, ColumnKind>> = {
  int2: 'int16',
  int4: 'int32',
  oid: 'uint32',
  int8: 'int64',
  float4: 'float32',
  float8: 'float64',
  bool: 'bool',
  date: 'date',
  timestamp: 'timestamp',
  timestamptz: 'timestamptz',
  time: 'time',
  timetz: 'timetz',
  interval: 'interval',
  text: 'text',
  enum: 'text',
  json: 'json',
  jsonb: 'json',
  numeric: 'plain-text',
  uuid: 'plain-text',
  bytea: 'bytes',
};

/**
 * The layout of a column in column-wise rows. A float in the replica identity (alone or in an array)
 * is kept as its JSON text: keys are compared as text, and a store prints floats its own way.
 */
export function columnKind(column: Pick<ColumnSchema, 'type' | 'array' | 'key'>): ColumnKind {
  const kind = SCALAR_KINDS[column.type] ?? 'value';
  if (column.key && (kind === 'float32' || kind === 'float64')) return 'value';
  return column.array && kind !== 'value' ? 'list' : kind;
}

/** The layout of an array column's elements (a {@link ListColumn}'s `elements`). */
export function elementKind(column: Pick<ColumnSchema, 'type'>): ElementKind {
  return SCALAR_KINDS[column.type] as ElementKind;
}

/** Bytes per element of the fixed-width kinds. */
export const FIXED_WIDTH: Readonly<Partial<Record<ColumnKind, number>>> = {
  int16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
  bool: 1,
  date: 4,
  timestamp: 8,
  timestamptz: 8,
  time: 8,
  timetz: 8,
  interval: 16,
};

/** A fixed-width column. */
export interface FixedColumn {
  readonly kind:
    | 'int16'
    | 'int32'
    | 'uint32'
    | 'int64'
    | 'float32'
    | 'float64'
    | 'bool'
    | 'date'
    | 'timestamp'
    | 'timestamptz'
    | 'time'
    | 'timetz'
    | 'interval';
  /** `length` elements of FIXED_WIDTH[kind] bytes, little-endian. */
  readonly data: Uint8Array;
  /** One byte per row, 1 where the value is null; undefined when none is. */
  readonly nulls: Uint8Array | undefined;
  /**
   * Rows whose value the fixed layout cannot hold or a store could not keep or print exactly
   * (±infinity, dates and times outside the years 1000–9999, a float's -0): the JSON text of the
   * Value, by row index.
   */
  readonly overrides: ReadonlyMap<number, string> | undefined;
}

/** A `text`, `json`, `plain-text` or `bytes` column: row i is `bytes[offsets[i], offsets[i + 1])`. */
export interface TextColumn {
  readonly kind: 'text' | 'json' | 'plain-text' | 'bytes';
  readonly bytes: Uint8Array;
  /** `length + 1` offsets into `bytes`. */
  readonly offsets: Int32Array;
  readonly nulls: Uint8Array | undefined;
}

/** The layouts of array elements. */
export type ElementKind = FixedColumn['kind'] | TextColumn['kind'];

/**
 * A `list` column: row i's elements are `elements` rows `[offsets[i], offsets[i + 1])` (a NULL
 * element is null in `elements`). Multi-dimensional arrays, and arrays holding an element the
 * element layout cannot hold exactly (one that would be an override of a fixed column), are
 * overrides: the JSON text of the whole Value, with no elements.
 */
export interface ListColumn {
  readonly kind: 'list';
  /** Every row's elements, in the element type's layout, never with overrides. */
  readonly elements: FixedColumn | TextColumn;
  /** `length + 1` offsets into `elements`. */
  readonly offsets: Int32Array;
  readonly nulls: Uint8Array | undefined;
  readonly overrides: ReadonlyMap<number, string> | undefined;
}

/** A `value` column: the JSON text of each row's Value (`encodeValue`), null for SQL NULL. */
export interface ValueColumn {
  readonly kind: 'value';
  readonly values: readonly (string | null)[];
}

export type RowColumn = FixedColumn | TextColumn | ListColumn | ValueColumn;

/** Rows of one table schema version, column-wise, one column per schema column in schema order. */
export interface ColumnRows {
  readonly length: number;
  readonly columns: readonly RowColumn[];
}
