/**
 * Core data types shared by every source, store and bus.
 *
 * Values are exact: a PostgreSQL value is represented without loss in JavaScript (see {@link Value}).
 */
import type { SnapshotRows } from './snapshot-rows.js';

/**
 * A source's position in its commit order, as an unsigned 64-bit integer: a later change has a larger
 * position. The source defines it (PostgreSQL: the LSN of the change or commit) and formats it for
 * people; the framework stores, compares and hands positions back, and never parses them.
 */
export type Position = bigint;

/**
 * A PostgreSQL log sequence number as an unsigned 64-bit integer. Always compare LSNs as bigints:
 * the textual form `16/B374D848` does not sort as a string.
 */
export type Lsn = bigint;

/** Parses the textual `X/Y` form of an LSN. */
export function parseLsn(text: string): Lsn {
  const slash = text.indexOf('/');
  if (slash < 0) throw new TypeError(`not an LSN: ${JSON.stringify(text)} (expected the form X/Y)`);
  return (BigInt('0x' + text.slice(0, slash)) << 32n) | BigInt('0x' + text.slice(slash + 1));
}

/** Formats an LSN in PostgreSQL's textual `X/Y` form. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
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
  /** LSN of this change (for snapshot reads: the slot's consistent point). */
  readonly lsn: Lsn;
  /** LSN of the transaction's commit record (for snapshot reads: the consistent point). */
  readonly commitLsn: Lsn;
  /** Commit time in microseconds since the Unix epoch, UTC. */
  readonly commitTime: bigint;
  /** Transaction id (0 for snapshot reads). */
  readonly xid: number;
  /** Version of the table's schema the row was decoded with (see {@link TableSchema}). */
  readonly schemaVersion: number;
  /**
   * Columns whose value PostgreSQL did not send because an unchanged TOASTed value was not rewritten
   * (pgoutput's 'u' tuple kind). The ingestion engine fills them from the last known row before the
   * change reaches any store; a stored change never lists any.
   */
  unchangedToast?: string[];
}

/**
 * A bounded run of changes in commit order. A batch may end in the middle of a transaction
 * (`complete: false`) when the transaction is larger than the batch size: the store must then keep
 * its own transaction open until a batch with `complete: true` arrives, so the apply stays atomic.
 */
export interface ChangeBatch {
  /**
   * The changes, in commit order. A snapshot batch carries its rows column-wise in
   * `snapshot.rows` instead, and holds them here as well only when the store asked for changes.
   */
  readonly changes: Change[];
  /**
   * True when the batch ends on a transaction boundary. Then {@link checkpoint} is the position to
   * store with the batch and to confirm to PostgreSQL once durable.
   */
  readonly complete: boolean;
  /** The checkpoint LSN after this batch (the last commit LSN it completes); meaningful when complete. */
  readonly checkpoint: Lsn;
  /** Schemas first seen in this batch (new tables or a new Relation message), to be stored with it. */
  readonly schemas: readonly (TableSchema & { readonly version: number })[];
  /** Set on batches of the initial snapshot: one table's rows, read at the slot's consistent point. */
  readonly snapshot?: SnapshotBatch;
  /**
   * Set on stream batches whose changes the source hands over in storage form: the store writes
   * these instead of `changes`, which then holds every change only when the store asked for them
   * (see {@link StreamStorage}).
   */
  readonly stored?: StreamStorage;
  /**
   * Set on the last batch of a table read again mid-stream: the stream skips the table's changes
   * committed before `lsn` (its new snapshot holds them), a position the store keeps with the batch.
   */
  readonly tableStart?: { readonly table: string; readonly lsn: Lsn };
  /**
   * Tables whose rows changed without changes in the stream, in a transaction this batch completes:
   * columns added with a default (PostgreSQL's missing value, or a rewrite) give the rows already
   * there a value the WAL never carries. The store records them with the batch; the engine then
   * reads them again ({@link ChangeLogState}'s `rereads`), by table the columns that caused it.
   */
  readonly rereads?: Readonly<Record<string, readonly string[]>>;
}

/**
 * A stream batch in the form a store writes: inserts and updates that carry no old row, with every
 * column sent, and deletes (their old row) go column-wise per table schema version ({@link StreamRowGroup});
 * every other change (truncates, updates with an old row or unchanged TOASTed values) is a {@link Change} in
 * `rest`. Each change knows its position in the batch, so the store numbers them in commit order.
 */
export interface StreamStorage {
  /** Changes in the batch (group rows plus `rest`). */
  readonly size: number;
  readonly groups: readonly StreamRowGroup[];
  readonly rest: readonly Change[];
  /** Position in the batch of each change of `rest`. */
  readonly restPositions: readonly number[];
}

/** Stream changes of one table schema version whose new row is carried column-wise. */
export interface StreamRowGroup {
  readonly table: string;
  readonly schemaVersion: number;
  /** The rows after the change (before it, for a delete), in the layout `snapshotColumnKind` gives for the schema version. */
  readonly rows: SnapshotRows;
  /** Per row, position in the batch. */
  readonly positions: Int32Array;
  /** Per row, the op's character code (`c`, `u`, `d`; `r` for a table read again). */
  readonly ops: Uint8Array;
  readonly lsns: BigUint64Array;
  readonly commitLsns: BigUint64Array;
  /** µs since the Unix epoch. */
  readonly commitTimes: BigInt64Array;
  /** Transaction ids as little-endian uint64 (two uint32 words per row, the high one 0). */
  readonly xids: Uint32Array;
}

/** How many changes a batch holds, whatever its form. */
export function batchLength(batch: ChangeBatch): number {
  return batch.snapshot?.rows.length ?? batch.stored?.size ?? batch.changes.length;
}

/** A batch of one table's initial snapshot: every row is a read (`r`) at the slot's consistent point. */
export interface SnapshotBatch {
  readonly table: string;
  /** True on the table's last batch. */
  readonly done: boolean;
  /** The rows, column-wise, in the layout `snapshotColumnKind` gives for the table's schema version. */
  readonly rows: SnapshotRows;
  readonly schemaVersion: number;
  /** The consistent point (every read's LSN and commit LSN). */
  readonly lsn: Lsn;
  /** When the snapshot was taken, µs since the Unix epoch. */
  readonly commitTime: bigint;
}
