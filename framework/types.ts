/**
 * Core data types shared by every source, store and bus.
 *
 * Values are exact: a PostgreSQL value is represented without loss in JavaScript (see {@link Value}).
 */
import type { ColumnRows } from './column-rows.js';

/**
 * A source's position in its commit order, as an unsigned 64-bit integer: a later change has a larger
 * position. The source defines it (PostgreSQL: the LSN of the change or of its commit); the framework
 * stores, compares and hands positions back, and never interprets them.
 */
export type Position = bigint;

/**
 * Parses the text form of a position, `X/Y`: its upper and lower 32 bits in hexadecimal (PostgreSQL's
 * notation for an LSN). Compare positions as bigints: the text form does not sort as a string.
 */
export function parsePosition(text: string): Position {
  const slash = text.indexOf('/');
  if (slash < 0) throw new TypeError(`not a position: ${JSON.stringify(text)} (expected the form X/Y)`);
  return (BigInt('0x' + text.slice(0, slash)) << 32n) | BigInt('0x' + text.slice(slash + 1));
}

/** The text form `X/Y` of a position (see {@link parsePosition}). */
export function formatPosition(position: Position): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * One column value, exact. The JavaScript form per PostgreSQL type:
 *
 * | PostgreSQL | JavaScript |
 * |---|---|
 * | bool | `boolean` |
 * | int2, int4, oid, float4, float8 | `number` (NaN and ±Infinity kept) |
 * | int8 | `bigint` (never a float) |
 * | numeric | `string`, the exact decimal (`'NaN'`, `'Infinity'`, `'-Infinity'`) |
 * | text, varchar, bpchar, name, enum labels | `string` |
 * | uuid | `string`, lower-case with dashes |
 * | json, jsonb | `string`, the JSON text as PostgreSQL prints it |
 * | bytea | `Uint8Array` |
 * | date | `string` `YYYY-MM-DD` (`infinity`, `-infinity`; BC dates end in ` BC`) |
 * | timestamp | `string` `YYYY-MM-DDTHH:MM:SS.ffffff` (microseconds always printed) |
 * | timestamptz | `string` `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always UTC |
 * | time | `string` `HH:MM:SS.ffffff` |
 * | timetz | `string` `HH:MM:SS.ffffff+HH:MM` |
 * | interval | `string`, ISO 8601 as PostgreSQL's `intervalstyle=iso_8601` prints it, e.g. `P1Y2M3DT4H5M6.5S` |
 * | arrays of these | nested `Value[]` (one level per dimension) |
 */
export type Value = null | boolean | number | bigint | string | Uint8Array | Value[];

/** A row: column name → value. */
export type Row = Record<string, Value>;

/** The type of one column as featureflow decodes it. */
export interface ColumnSchema {
  /** Column name as PostgreSQL spells it. */
  readonly name: string;
  /**
   * Normalised base type name: `bool`, `int2`, `int4`, `int8`, `oid`, `float4`, `float8`, `numeric`,
   * `text` (also varchar, bpchar, name), `enum`, `uuid`, `json`, `jsonb`, `bytea`, `date`, `timestamp`,
   * `timestamptz`, `time`, `timetz`, `interval`. Domains are resolved to their base type.
   */
  readonly type: string;
  /** True for an array column; `type` is then the element type. */
  readonly array: boolean;
  /** The PostgreSQL type OID as the catalog or the Relation message gives it. */
  readonly typeOid: number;
  /** True when the column is part of the replica identity (primary key or identity index, or every column with FULL). */
  readonly key: boolean;
  /**
   * The column's type modifier where it has one (PostgreSQL's `atttypmod`: a numeric's precision and
   * scale, a timestamp's or time's fractional digits, a varchar's length); absent without one.
   */
  readonly typeModifier?: number;
}

/** Schema of one captured table at one point in the stream. */
export interface TableSchema {
  /** Qualified name `schema.table`, unquoted. */
  readonly table: string;
  readonly columns: readonly ColumnSchema[];
  /** Names of the columns that identify a row (the primary key, or every column under REPLICA IDENTITY FULL). */
  readonly keyColumns: readonly string[];
}

/** Change operations, as Debezium spells them: read (snapshot), create, update, delete, truncate. */
export type Op = 'r' | 'c' | 'u' | 'd' | 't';

/** A table schema with its version in the change log (a new version after each ALTER TABLE). */
export type VersionedSchema = TableSchema & { readonly version: number };

/** One row-level change, in commit order. */
export interface Change {
  /** Qualified table name `schema.table`. */
  readonly table: string;
  readonly op: Op;
  /** Key column values of the row after the change (before it, for a delete); null for a truncate. */
  readonly key: Row | null;
  /** What the replica identity gives of the old row: key columns by default, every column with FULL; null for inserts and reads. */
  readonly before: Row | null;
  /** The new row for reads, inserts and updates; null for deletes and truncates. */
  after: Row | null;
  /** Position of this change (for snapshot reads: the snapshot's point). */
  readonly position: Position;
  /** Position of the transaction's commit (for snapshot reads: the snapshot's point). */
  readonly commitPosition: Position;
  /** Commit time in microseconds since the Unix epoch, UTC. */
  readonly commitTime: bigint;
  /** Transaction id (0 for snapshot reads). */
  readonly xid: number;
  /** Version of the table's schema the row was decoded with (see {@link VersionedSchema}). */
  readonly schemaVersion: number;
  /**
   * Columns whose value the source did not send because an unchanged TOASTed value was not rewritten
   * (pgoutput's 'u' tuple kind). The ingestion engine fills them from the last known row before the
   * change reaches any store; a stored change never lists any.
   */
  unchangedToast?: string[];
}

/**
 * Changes of one table schema version carried column-wise: reads, inserts and updates that carry no
 * old row (their new row), and deletes (their old row: the key, or every column under REPLICA
 * IDENTITY FULL), with each row's op, place in the batch and commit data.
 */
export interface RowGroup {
  readonly table: string;
  readonly schemaVersion: number;
  /** The rows, in the layout `columnKind` gives for the schema version's columns. */
  readonly rows: ColumnRows;
  /** Per row, its index among the batch's changes (commit order). */
  readonly indexes: Int32Array;
  /** Per row, the op's character code (`r`, `c`, `u`, `d`). */
  readonly ops: Uint8Array;
  readonly positions: BigUint64Array;
  readonly commitPositions: BigUint64Array;
  /** µs since the Unix epoch. */
  readonly commitTimes: BigInt64Array;
  /** Transaction ids as little-endian uint64 (two uint32 words per row, the high one 0). */
  readonly xids: Uint32Array;
}

/**
 * A bounded run of changes in commit order, the one shape every source hands out and every store
 * reads: most changes column-wise in {@link groups}, the others as {@link Change}s; `changes-of.ts`
 * reads them all as Changes, in order. A batch may end in the middle of a transaction
 * (`complete: false`) when the transaction is larger than the batch size: the store must then keep
 * its own transaction open until a batch with `complete: true` arrives, so the apply stays atomic.
 */
export interface ChangeBatch {
  readonly groups: readonly RowGroup[];
  /** Every change not in a group: truncates, and updates that carry their old row or leave TOASTed values unchanged. */
  readonly changes: Change[];
  /** Index among the batch's changes of each of {@link changes}. */
  readonly changeIndexes: readonly number[];
  /** Changes in the batch (group rows plus {@link changes}). */
  readonly size: number;
  /**
   * True when the batch ends on a transaction boundary. Then {@link checkpoint} is the position to
   * store with the batch and to confirm to the source once durable.
   */
  readonly complete: boolean;
  /** The position after this batch (the last commit it completes); meaningful when complete. */
  readonly checkpoint: Position;
  /** Schemas first seen in this batch (new tables or a new shape), to be stored with it. */
  readonly schemas: readonly VersionedSchema[];
  /** Set on the batches of a snapshot: one table's rows, all reads at the snapshot's point. */
  readonly snapshot?: SnapshotPart;
  /**
   * Set on the last batch of a table read again mid-stream: the stream skips the table's changes
   * committed before `position` (its new snapshot holds them), a position the store keeps with the batch.
   */
  readonly tableStart?: { readonly table: string; readonly position: Position };
  /**
   * Tables whose rows changed without changes in the stream, in a transaction this batch completes:
   * columns added with a default (PostgreSQL's missing value, or a rewrite) give the rows already
   * there a value the WAL never carries. The store records them with the batch; the engine then
   * reads them again ({@link ChangeLogState}'s `rereads`), by table the columns that caused it.
   */
  readonly rereads?: Readonly<Record<string, readonly string[]>>;
  /**
   * What the source records of where it stands beyond the position (e.g. a Kafka offset per
   * partition), on a complete batch: the store keeps it as the source record, committed with the
   * checkpoint in the same transaction, and {@link PrepareOptions}' `record` hands it back.
   */
  readonly sourceRecord?: Readonly<Record<string, unknown>>;
}

/** What marks a batch of a snapshot. */
export interface SnapshotPart {
  readonly table: string;
  /** True on the table's last batch. */
  readonly done: boolean;
  /** The snapshot's point: every read's position. */
  readonly point: Position;
  /** When the snapshot was taken, µs since the Unix epoch. */
  readonly time: bigint;
  /**
   * True for a table read again mid-stream (after columns were added with a default): its first
   * batch starts with a truncate of the table, and its rows are kept as the stream's are.
   */
  readonly reread: boolean;
}

/** Qualifies a table name with `public` when it has no schema. */
export function qualifyTable(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}
