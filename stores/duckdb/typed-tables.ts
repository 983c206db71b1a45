/**
 * Typed per-table storage of the change log. `_snapshot__<schema.table>` holds one row per snapshot
 * read, and `_stream__<schema.table>__v<version>` the stream's inserts and updates without an old row
 * (their new row) and deletes (their old row) of one schema version, with DuckDB types
 * (SMALLINT…DOUBLE, BOOLEAN, DATE, TIMESTAMP[TZ], VARCHAR),
 * appended from column-wise {@link SnapshotRows} with bulk copies, numbered by a `_ff_seq` column in
 * the log's `seq`; `_changes` holds every other change as JSON. The view `change_log` joins them all
 * with the columns of `_changes`, printing each typed row's key and row in the JSON form of
 * `framework/value-json.ts` (the key byte for byte as `encodeKey` writes it, so keys from any storage
 * compare equal as text).
 */
import duckdb from '@duckdb/node-bindings';
import {
  BIGINT,
  BOOLEAN,
  DATE,
  DOUBLE,
  DuckDBDataChunk,
  FLOAT,
  INTEGER,
  SMALLINT,
  TIMESTAMP,
  TIMESTAMPTZ,
  UBIGINT,
  UINTEGER,
  UTINYINT,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
} from '@duckdb/node-api';
import {
  FIXED_WIDTH,
  snapshotColumnKind,
  type FixedSnapshotColumn,
  type SnapshotColumnKind,
  type SnapshotRows,
  type TextSnapshotColumn,
} from '../../framework/snapshot-rows.js';
import type { ColumnSchema, Row, TableSchema, Value } from '../../framework/types.js';
import { keyPrefix } from '../../framework/value-json.js';
import { ValidityMask } from './chunk-columns.js';
import { quoteIdent, quoteLiteral } from './duckdb-database.js';

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;

const DUCKDB_TYPES: Readonly<Record<SnapshotColumnKind, DuckDBType>> = {
  int16: SMALLINT,
  int32: INTEGER,
  uint32: UINTEGER,
  int64: BIGINT,
  float32: FLOAT,
  float64: DOUBLE,
  bool: BOOLEAN,
  date: DATE,
  timestamp: TIMESTAMP,
  timestamptz: TIMESTAMPTZ,
  text: VARCHAR,
  'plain-text': VARCHAR,
  value: VARCHAR,
};

/** The longest string DuckDB keeps inside its 16-byte string header. */
const INLINE_MAX = 12;
/** Most bytes of a chunk's text column handed to DuckDB as one string (see appendText). */
const ONE_CALL_MAX = 256 * 1024 * 1024;

/** Kinds whose values may not fit the native type: they get a VARCHAR column of overrides. */
const HAS_OVERRIDES = new Set<SnapshotColumnKind>(['date', 'timestamp', 'timestamptz', 'float32', 'float64']);

/** One snapshot table as recorded in `_snapshot_tables`. */
export interface SnapshotTableInfo {
  readonly table: string;
  /** The DuckDB table holding the rows. */
  readonly storage: string;
  readonly schema: TableSchema & { readonly version: number };
  /** `seq` of the table's first row minus one. */
  readonly seqBase: bigint;
  readonly lsn: bigint;
  /** µs since the Unix epoch. */
  readonly commitTime: bigint;
}

/** One stream table as recorded in `_stream_tables`: a table's typed stream rows of one schema version. */
export interface StreamTableInfo {
  readonly table: string;
  readonly storage: string;
  readonly schema: TableSchema & { readonly version: number };
}

/** Where a table's snapshot rows are stored. */
export function snapshotStorageName(table: string): string {
  return `_snapshot__${table}`;
}

/** Where a table's typed stream rows of one schema version are stored. */
export function streamStorageName(table: string, version: number): string {
  return `_stream__${table}__v${version}`;
}

/** A schema column in storage: its layout, DuckDB type, and the name of its override column if any. */
interface StoredColumn {
  readonly column: ColumnSchema;
  readonly kind: SnapshotColumnKind;
  readonly type: DuckDBType;
  readonly override: string | undefined;
}

/** A column of a typed table besides the table's own: seq, and for the stream op, LSNs, time, xid. */
interface MetaColumn {
  readonly what: string;
  /** `_ff_<what>`, prefixed with `_` while a table column (or another meta column) has the name. */
  readonly name: string;
  readonly type: DuckDBType;
  /** Bytes per value in the writer's input. */
  readonly width: number;
}

const SNAPSHOT_META = [{ what: 'seq', type: BIGINT, width: 8 }];
const STREAM_META = [
  { what: 'seq', type: BIGINT, width: 8 },
  { what: 'op', type: UTINYINT, width: 1 },
  { what: 'lsn', type: UBIGINT, width: 8 },
  { what: 'commit_lsn', type: UBIGINT, width: 8 },
  { what: 'commit_time', type: TIMESTAMPTZ, width: 8 },
  { what: 'xid', type: UBIGINT, width: 8 },
];

/** How a typed table stores rows of a schema: meta columns first, then the table's columns and their overrides. */
export interface TypedLayout {
  readonly meta: readonly MetaColumn[];
  readonly stored: readonly StoredColumn[];
}

function layoutOf(columns: readonly ColumnSchema[], meta: readonly { what: string; type: DuckDBType; width: number }[]): TypedLayout {
  const names = new Set(columns.map((c) => c.name));
  const metaColumns = meta.map(({ what, type, width }) => {
    let name = `_ff_${what}`;
    while (names.has(name)) name = `_${name}`;
    names.add(name);
    return { what, name, type, width };
  });
  return { meta: metaColumns, stored: storedColumns(columns, names) };
}

/** The layout of a table's snapshot storage. */
export function snapshotLayout(columns: readonly ColumnSchema[]): TypedLayout {
  return layoutOf(columns, SNAPSHOT_META);
}

/** The layout of a table's stream storage (one schema version). */
export function streamLayout(columns: readonly ColumnSchema[]): TypedLayout {
  return layoutOf(columns, STREAM_META);
}

/** The quoted name of a stream table's `seq` or commit time column. */
export function streamMetaColumn(t: StreamTableInfo, what: 'seq' | 'commit_time'): string {
  return quoteIdent(streamLayout(t.schema.columns).meta.find((m) => m.what === what)!.name);
}

function storedColumns(columns: readonly ColumnSchema[], names: Set<string>): StoredColumn[] {
  return columns.map((column) => {
    const kind = snapshotColumnKind(column);
    let override: string | undefined;
    if (HAS_OVERRIDES.has(kind)) {
      override = `${column.name}__json`;
      while (names.has(override)) override = `_${override}`;
      names.add(override);
    }
    return { column, kind, type: DUCKDB_TYPES[kind], override };
  });
}

/** `CREATE TABLE` of typed storage. */
function typedTableDdl(storage: string, layout: TypedLayout): string {
  const defs: string[] = layout.meta.map((m) => `${quoteIdent(m.name)} ${m.type.toString()} NOT NULL`);
  for (const s of layout.stored) {
    defs.push(`${quoteIdent(s.column.name)} ${s.type.toString()}`);
    if (s.override) defs.push(`${quoteIdent(s.override)} VARCHAR`);
  }
  return `CREATE TABLE ${quoteIdent(storage)} (${defs.join(', ')})`;
}

const MAX_SAFE = '9007199254740991';

/**
 * SQL printing a non-null stored value as the JSON text of its Value; for a key column, as `encodeKey`
 * prints it (an int8 within ±2^53 as a number).
 */
function jsonOf(kind: SnapshotColumnKind, c: string, asKey: boolean): string {
  switch (kind) {
    case 'int16':
    case 'int32':
    case 'uint32':
      return `CAST(${c} AS VARCHAR)`;
    case 'int64':
      return asKey
        ? `CASE WHEN ${c} BETWEEN -${MAX_SAFE} AND ${MAX_SAFE} THEN CAST(${c} AS VARCHAR) ELSE '"' || CAST(${c} AS VARCHAR) || '"' END`
        : `'"' || CAST(${c} AS VARCHAR) || '"'`;
    case 'float32':
    case 'float64': {
      const x = kind === 'float32' ? `CAST(${c} AS DOUBLE)` : c;
      return `CASE WHEN isnan(${x}) THEN '"NaN"' WHEN isinf(${x}) THEN CASE WHEN ${x} > 0 THEN '"Infinity"' ELSE '"-Infinity"' END ELSE CAST(${x} AS VARCHAR) END`;
    }
    case 'bool':
      return `CASE WHEN ${c} THEN 'true' ELSE 'false' END`;
    case 'date':
      return `'"' || strftime(${c}, '%Y-%m-%d') || '"'`;
    case 'timestamp':
      return `'"' || strftime(${c}, '%Y-%m-%dT%H:%M:%S.%f') || '"'`;
    case 'timestamptz':
      // Through epoch µs: a TIMESTAMPTZ would be printed in the session's time zone.
      return `'"' || strftime(make_timestamp(epoch_us(${c})), '%Y-%m-%dT%H:%M:%S.%fZ') || '"'`;
    case 'text':
      return jsonStringOf(c);
    case 'plain-text':
      return `'"' || ${c} || '"'`;
    case 'value':
      return c;
  }
}

/** JSON's short escapes (as JSON.stringify writes them) of the control characters that have one. */
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

/**
 * SQL quoting a VARCHAR as a JSON string, as `quote` in value-json writes it (JSON.stringify with
 * upper-case `\u00XX`). Plain replaces rather than `to_json`, whose buffers for long strings outgrow a
 * small memory limit; most values take the first branch.
 */
function jsonStringOf(c: string): string {
  let full = `replace(replace(${c}, '\\', '\\\\'), '"', '\\"')`;
  for (let code = 1; code < 32; code++) {
    const escape = SHORT_ESCAPES[code] ?? `\\u00${code.toString(16).toUpperCase().padStart(2, '0')}`;
    full = `replace(${full}, chr(${code}), '${escape}')`;
  }
  return (
    `CASE WHEN NOT regexp_matches(${c}, '["\\\\\\x01-\\x1f]') THEN '"' || ${c} || '"' ` +
    `WHEN NOT regexp_matches(${c}, '[\\x01-\\x1f]') THEN '"' || replace(replace(${c}, '\\', '\\\\'), '"', '\\"') || '"' ` +
    `ELSE '"' || ${full} || '"' END`
  );
}

/** SQL of the JSON object `{"name":value,…}` of the given stored columns, as encodeRow / encodeKey write it. */
function jsonObjectOf(columns: readonly StoredColumn[], asKey: boolean): string {
  if (columns.length === 0) return `'{}'`;
  const parts = columns.map((s, i) => {
    const c = quoteIdent(s.column.name);
    let value = `CASE WHEN ${c} IS NULL THEN 'null' ELSE ${jsonOf(s.kind, c, asKey)} END`;
    if (s.override) value = `coalesce(${quoteIdent(s.override)}, ${value})`;
    return `${quoteLiteral((i === 0 ? '{' : ',') + keyPrefix(s.column.name))} || ${value}`;
  });
  return `${parts.join(' || ')} || '}'`;
}

const CHANGES_COLUMNS = 'seq, table_name, op, key, before, after, lsn, commit_lsn, commit_time, xid, schema_version';

/**
 * The key and rows of a typed table's rows in JSON, as `encodeKey` and `encodeRow` write them. With
 * `op` (the stream's op column), a delete's row is its old row, `before`: the key columns (every
 * column under REPLICA IDENTITY FULL), in table order; else the row is `after`.
 */
function keyAndRowSql(schema: TableSchema, stored: readonly StoredColumn[], op?: string): string {
  const keys = schema.keyColumns.map((k) => stored.find((s) => s.column.name === k)!).filter(Boolean);
  const key = `${jsonObjectOf(keys, true)} AS key`;
  if (!op) return `${key}, CAST(NULL AS VARCHAR) AS before, ${jsonObjectOf(stored, false)} AS after`;
  const old = stored.filter((s) => schema.keyColumns.includes(s.column.name));
  const isDelete = `${op} = ${'d'.charCodeAt(0)}`;
  return `${key}, CASE WHEN ${isDelete} THEN ${jsonObjectOf(old, false)} END AS before, CASE WHEN NOT ${isDelete} THEN ${jsonObjectOf(stored, false)} END AS after`;
}

/** A table's snapshot rows in the columns of `_changes` (only those matching `where`, on the storage's columns, if given). */
export function snapshotSelectSql(t: SnapshotTableInfo, where?: string): string {
  const { meta, stored } = snapshotLayout(t.schema.columns);
  return (
    `SELECT ${quoteIdent(meta[0]!.name)} AS seq, ${quoteLiteral(t.table)} AS table_name, 'r' AS op, ${keyAndRowSql(t.schema, stored)}, ` +
    `CAST(${t.lsn} AS UBIGINT) AS lsn, CAST(${t.lsn} AS UBIGINT) AS commit_lsn, ` +
    `to_timestamp(0) + to_microseconds(CAST(${t.commitTime} AS BIGINT)) AS commit_time, CAST(0 AS UBIGINT) AS xid, ` +
    `CAST(${t.schema.version} AS INTEGER) AS schema_version FROM ${quoteIdent(t.storage)}${where ? ` WHERE ${where}` : ''}`
  );
}

/** A table's typed stream rows of one schema version in the columns of `_changes` (only those matching `where`, if given). */
export function streamSelectSql(t: StreamTableInfo, where?: string): string {
  const { meta, stored } = streamLayout(t.schema.columns);
  const [seq, op, lsn, commitLsn, commitTime, xid] = meta.map((m) => quoteIdent(m.name));
  return (
    `SELECT ${seq} AS seq, ${quoteLiteral(t.table)} AS table_name, chr(CAST(${op} AS INTEGER)) AS op, ${keyAndRowSql(t.schema, stored, op)}, ` +
    `${lsn} AS lsn, ${commitLsn} AS commit_lsn, ${commitTime} AS commit_time, ${xid} AS xid, ` +
    `CAST(${t.schema.version} AS INTEGER) AS schema_version FROM ${quoteIdent(t.storage)}${where ? ` WHERE ${where}` : ''}`
  );
}

/**
 * A condition on a typed table's own columns that every row with one of `keys` meets: the first key
 * column stored natively (integers, bool, text) whose values in `keys` all have that column's type,
 * `IN` those values; undefined when no column qualifies. It narrows a key lookup before each row's
 * key is printed as JSON (which is what the lookup then compares).
 */
export function keyPrefilter(schema: TableSchema, keys: readonly Row[]): string | undefined {
  for (const name of schema.keyColumns) {
    const column = schema.columns.find((c) => c.name === name);
    if (!column) continue;
    const kind = snapshotColumnKind(column);
    const literals = new Set<string>();
    for (const key of keys) literals.add(nativeLiteral(kind, key[name]) ?? '');
    if (keys.length > 0 && !literals.has('')) return `${quoteIdent(name)} IN (${[...literals].join(', ')})`;
  }
  return undefined;
}

/** The SQL literal of a key value in a natively stored column of `kind`, or undefined. */
function nativeLiteral(kind: SnapshotColumnKind, value: Value | undefined): string | undefined {
  switch (kind) {
    case 'int16':
    case 'int32':
    case 'uint32':
    case 'int64':
      return (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint' ? String(value) : undefined;
    case 'bool':
      return typeof value === 'boolean' ? String(value) : undefined;
    case 'text':
    case 'plain-text':
      return typeof value === 'string' ? quoteLiteral(value) : undefined;
    default:
      return undefined;
  }
}

/** `CREATE OR REPLACE VIEW change_log`: `_changes` and every typed table, in the columns of `_changes`. */
export function changeLogViewSql(snapshots: readonly SnapshotTableInfo[], streams: readonly StreamTableInfo[]): string {
  const parts = [`SELECT ${CHANGES_COLUMNS} FROM _changes`, ...snapshots.map((t) => snapshotSelectSql(t)), ...streams.map((t) => streamSelectSql(t))];
  return `CREATE OR REPLACE VIEW change_log AS ${parts.join('\nUNION ALL ')}`;
}

/** Appends column-wise rows to a typed table through data chunks. */
export class TypedTableWriter {
  private readonly types: DuckDBType[];
  private pending = false;
  /**
   * One data chunk, reset for each append (the appender copies what it is given): a chunk made per
   * append costs a native object per column, and the stream appends a few rows many times a second.
   */
  private chunk: DuckDBDataChunk | undefined;
  private vectors: duckdb.Vector[] | undefined;
  /** A chunk's worth of inlined strings, and the rows of the longer ones (see appendText). */
  private readonly inline = new Uint8Array(CHUNK_ROWS * 16);
  private readonly inlineWords = new Uint32Array(this.inline.buffer);
  private readonly longRows = new Int32Array(CHUNK_ROWS);

  private constructor(
    private readonly appender: DuckDBAppender,
    private readonly layout: TypedLayout,
  ) {
    this.types = [...layout.meta.map((m) => m.type), ...layout.stored.flatMap((s) => (s.override ? [s.type, VARCHAR] : [s.type]))];
  }

  /** Creates the storage table (inside the caller's transaction), replacing any, and an appender on it. */
  static async create(c: DuckDBConnection, storage: string, layout: TypedLayout): Promise<TypedTableWriter> {
    await c.run(`DROP TABLE IF EXISTS ${quoteIdent(storage)}`);
    await c.run(typedTableDdl(storage, layout));
    return TypedTableWriter.open(c, storage, layout);
  }

  /** An appender on existing storage. */
  static async open(c: DuckDBConnection, storage: string, layout: TypedLayout): Promise<TypedTableWriter> {
    return new TypedTableWriter(await c.createAppender(storage), layout);
  }

  /**
   * Appends `rows`; `meta` holds, per meta column of the layout, the little-endian bytes of every
   * row's value (`width` bytes each).
   */
  append(rows: SnapshotRows, meta: readonly Uint8Array[]): void {
    if (rows.length > 0) this.pending = true;
    for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, rows.length - start);
      const chunk = this.chunkOf(n);
      let v = 0;
      this.layout.meta.forEach((m, i) => {
        const bytes = meta[i]!;
        duckdb.copy_data_to_vector(this.vectors![v++]!, 0, bytes.buffer as ArrayBuffer, bytes.byteOffset + start * m.width, n * m.width);
      });
      this.layout.stored.forEach((s, i) => {
        const column = rows.columns[i]!;
        const vector = this.vectors![v++]!;
        const validity = new ValidityMask(n);
        if (column.kind === 'value') {
          for (let r = 0; r < n; r++) {
            const text = column.values[start + r];
            if (text === null || text === undefined) validity.setNull(r);
            else duckdb.vector_assign_string_element(vector, r, text);
          }
        } else if (column.kind === 'text' || column.kind === 'plain-text') {
          this.appendText(vector, column, start, n, validity);
        } else {
          const { kind, data, nulls, overrides } = column as FixedSnapshotColumn;
          const width = FIXED_WIDTH[kind]!;
          duckdb.copy_data_to_vector(vector, 0, data.buffer as ArrayBuffer, data.byteOffset + start * width, n * width);
          if (nulls) for (let r = 0; r < n; r++) if (nulls[start + r]) validity.setNull(r);
          if (s.override) {
            const overrideVector = this.vectors![v++]!;
            // Every row null but the overridden ones (mostly none).
            const overridden = new ValidityMask(n);
            overridden.bytes = new Uint8Array(Math.ceil(n / 64) * 8);
            if (overrides) {
              for (const [row, text] of overrides) {
                if (row < start || row >= start + n) continue;
                const r = row - start;
                validity.setNull(r);
                overridden.bytes[r >> 3]! |= 1 << (r & 7);
                duckdb.vector_assign_string_element(overrideVector, r, text);
              }
            }
            setValidity(overrideVector, overridden);
          }
        }
        setValidity(vector, validity);
      });
      this.appender.appendDataChunk(chunk);
    }
  }

  /** The writer's data chunk, emptied, holding `n` rows. */
  private chunkOf(n: number): DuckDBDataChunk {
    if (!this.chunk) {
      this.chunk = DuckDBDataChunk.create(this.types);
      this.vectors = this.types.map((_, i) => duckdb.data_chunk_get_vector(this.chunk!.chunk, i));
    } else this.chunk.reset();
    this.chunk.rowCount = n;
    return this.chunk;
  }

  /**
   * Rows [start, start + n) of a text column into `vector` as DuckDB's `duckdb_string_t` entries
   * (uint32 length, then either the bytes themselves, zero-padded, when they fit in 12, or a 4-byte
   * prefix and a pointer), all written with one copy. The longer strings' bytes are handed to DuckDB
   * in one piece, the rows' whole byte range assigned to row 0, which puts it in the vector's string
   * heap; that copy's address, read back from row 0's entry, then gives each long string's pointer.
   * One call per chunk instead of one per string: the per-string N-API call cost ~150 ns, ~0.3 s per
   * 1M rows of two long text columns. The heap lives until the chunk is reset, after the appender has
   * copied the strings.
   */
  private appendText(vector: duckdb.Vector, column: TextSnapshotColumn, start: number, n: number, validity: ValidityMask): void {
    const { bytes, offsets, nulls } = column;
    const inline = this.inline;
    const words = this.inlineWords;
    inline.fill(0, 0, n * 16);
    let longRows = 0;
    for (let r = 0; r < n; r++) {
      if (nulls?.[start + r]) {
        validity.setNull(r);
        continue;
      }
      const from = offsets[start + r]!;
      const length = offsets[start + r + 1]! - from;
      const at = r * 16;
      words[r * 4] = length;
      if (length > INLINE_MAX) {
        this.longRows[longRows++] = r;
        for (let i = 0; i < 4; i++) inline[at + 4 + i] = bytes[from + i]!;
        continue;
      }
      for (let i = 0; i < length; i++) inline[at + 4 + i] = bytes[from + i]!;
    }
    const base = offsets[start]!;
    const total = offsets[start + n]! - base;
    const oneCall = total <= ONE_CALL_MAX;
    if (longRows > 0 && oneCall) {
      // More than 12 bytes in all (a long string is among them): never inlined, so row 0 holds a pointer.
      duckdb.vector_assign_string_element_len(vector, 0, bytes.subarray(base, base + total));
      const head = duckdb.vector_get_data(vector, 16);
      const low = (head[8]! | (head[9]! << 8) | (head[10]! << 16) | (head[11]! << 24)) >>> 0;
      const high = (head[12]! | (head[13]! << 8) | (head[14]! << 16) | (head[15]! << 24)) >>> 0;
      for (let k = 0; k < longRows; k++) {
        const r = this.longRows[k]!;
        const pointer = low + (offsets[start + r]! - base);
        const carry = pointer >= 4294967296 ? 1 : 0;
        words[r * 4 + 2] = pointer - carry * 4294967296;
        words[r * 4 + 3] = high + carry;
      }
    }
    duckdb.copy_data_to_vector(vector, 0, inline.buffer as ArrayBuffer, 0, n * 16);
    // Rows whose bytes are too many for one string (DuckDB's lengths are 32-bit): one call per long string.
    for (let k = 0; !oneCall && k < longRows; k++) {
      const r = this.longRows[k]!;
      duckdb.vector_assign_string_element_len(vector, r, bytes.subarray(offsets[start + r]!, offsets[start + r + 1]!));
    }
  }

  /** Flushes what was appended since the last flush into the open transaction. */
  flush(): void {
    if (!this.pending) return;
    this.appender.flushSync();
    this.pending = false;
  }

  /** Closes the appender; call after {@link flush}. */
  close(): void {
    this.appender.closeSync();
  }

  /** Drops what is pending and closes the appender (the transaction is being rolled back). */
  discard(): void {
    try {
      this.appender.clear();
      this.appender.closeSync();
    } catch {
      // The table goes with the transaction either way.
    }
  }
}

/** `seq` values `first`, `first + 1`, … for `length` rows, as little-endian int64 bytes (seq stays far below 2^53). */
export function consecutiveSeqBytes(first: bigint, length: number): Uint8Array {
  return seqBytes(length, Number(first), (r) => r);
}

/** `seq` values `base + 1 + positions[r]`, as little-endian int64 bytes. */
export function positionedSeqBytes(base: bigint, positions: Int32Array): Uint8Array {
  return seqBytes(positions.length, Number(base) + 1, (r) => positions[r]!);
}

function seqBytes(length: number, first: number, offset: (row: number) => number): Uint8Array {
  const words = new Int32Array(length * 2);
  for (let r = 0; r < length; r++) {
    const seq = first + offset(r);
    const hi = Math.floor(seq / 4294967296);
    words[r * 2] = seq - hi * 4294967296;
    words[r * 2 + 1] = hi;
  }
  return new Uint8Array(words.buffer);
}

function setValidity(vector: duckdb.Vector, mask: ValidityMask): void {
  if (!mask.bytes) return;
  duckdb.vector_ensure_validity_writable(vector);
  duckdb.copy_data_to_vector_validity(vector, 0, mask.bytes.buffer as ArrayBuffer, mask.bytes.byteOffset, mask.bytes.byteLength);
}
