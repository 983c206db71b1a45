import {
  BIGINT,
  BLOB,
  BOOLEAN,
  DATE,
  DOUBLE,
  FLOAT,
  INTEGER,
  INTERVAL,
  LIST,
  SMALLINT,
  TIME,
  TIMESTAMP,
  TIMESTAMPTZ,
  TIMETZ,
  UBIGINT,
  UINTEGER,
  UTINYINT,
  VARCHAR,
  DuckDBVarCharType,
  type DuckDBType,
} from '@duckdb/node-api';
import { columnKind, elementKind, type ColumnKind } from '../../../framework/column-rows.js';
import type { ColumnSchema, TableSchema } from '../../../framework/types.js';
import { quoteIdent } from '../duckdb-database.js';

/** Rows per DuckDB data chunk (DuckDB's vector size). */
export const CHUNK_ROWS = 2048;

/**
 * DuckDB's JSON type: a VARCHAR under the alias `JSON` (the json extension, built into the node
 * bindings). Its name in SQL is `JSON` (the node API prints an aliased type by its base type). The
 * appender copies strings into a JSON column as they are, without parsing them: json keeps its text
 * exactly (whitespace, key order, duplicate keys), and a value DuckDB's parser would refuse (a lone
 * surrogate escape `"\ud800"`, which PostgreSQL's json accepts) is kept too, failing only the JSON
 * functions called on it.
 */
export const JSON_TYPE: DuckDBType = new (class extends DuckDBVarCharType {
  constructor() {
    super('JSON');
  }
  override toString(): string {
    return 'JSON';
  }
})();

/**
 * The DuckDB type of each layout but `list` (a LIST of its element's type). DuckDB's TIME, TIMETZ and
 * INTERVAL have the layouts' bytes (int64 µs; µs · 2^24 + 57599 − offset east; int32 months, int32
 * days, int64 µs), so they are copied as they are.
 */
const DUCKDB_TYPES: Readonly<Record<Exclude<ColumnKind, 'list'>, DuckDBType>> = {
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
  time: TIME,
  timetz: TIMETZ,
  interval: INTERVAL,
  text: VARCHAR,
  json: JSON_TYPE,
  'plain-text': VARCHAR,
  bytes: BLOB,
  value: VARCHAR,
};

/** The longest string DuckDB keeps inside its 16-byte string header. */
export const INLINE_MAX = 12;
/** Most bytes of a chunk's text column handed to DuckDB as one string (see appendText). */
export const ONE_CALL_MAX = 256 * 1024 * 1024;

/** Kinds whose values may not fit the native type: they get a VARCHAR column of overrides. */
const HAS_OVERRIDES = new Set<ColumnKind>([
  'date',
  'timestamp',
  'timestamptz',
  'float32',
  'float64',
  'timetz',
  'interval',
  'list',
]);

/** The layouts whose column types changed since typed tables held them as JSON text (VARCHAR). */
export const NATIVE_SINCE_JSON = new Set<ColumnKind>(['time', 'timetz', 'interval', 'bytes', 'list']);

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
export interface StoredColumn {
  readonly column: ColumnSchema;
  readonly kind: ColumnKind;
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

function layoutOf(
  columns: readonly ColumnSchema[],
  meta: readonly { what: string; type: DuckDBType; width: number }[],
): TypedLayout {
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
    const kind = columnKind(column);
    let override: string | undefined;
    if (HAS_OVERRIDES.has(kind)) {
      override = `${column.name}__json`;
      while (names.has(override)) override = `_${override}`;
      names.add(override);
    }
    const type = kind === 'list' ? LIST(DUCKDB_TYPES[elementKind(column)]) : DUCKDB_TYPES[kind];
    return { column, kind, type, override };
  });
}

/** `CREATE TABLE` of typed storage. */
export function typedTableDdl(storage: string, layout: TypedLayout): string {
  const defs: string[] = layout.meta.map((m) => `${quoteIdent(m.name)} ${m.type.toString()} NOT NULL`);
  for (const s of layout.stored) {
    defs.push(`${quoteIdent(s.column.name)} ${s.type.toString()}`);
    if (s.override) defs.push(`${quoteIdent(s.override)} VARCHAR`);
  }
  return `CREATE TABLE ${quoteIdent(storage)} (${defs.join(', ')})`;
}
