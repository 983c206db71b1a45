import type { ChangeBatch, Lsn, Row, TableSchema } from '../types.js';
import type { SourceRecord } from './source.js';

/** What the change log holds about its own progress. */
export interface ChangeLogState {
  /** LSN up to which every change is durable, or null before the first snapshot completed. */
  readonly checkpoint: Lsn | null;
  /** True once the initial snapshot of every table is durable. */
  readonly snapshotDone: boolean;
  /** Tables the log was started with (qualified names), or null when empty. */
  readonly tables: readonly string[] | null;
  /** What the source recorded of what it created for this log (see {@link SourceRecord}), or null. */
  readonly sourceRecord: SourceRecord | null;
  /** The newest commit time in the log (µs since the Unix epoch), or null when empty. */
  readonly lastCommitTime: bigint | null;
  /** The LSN each table's completed snapshot was taken at (its latest, for a table read again). */
  readonly tableStarts: ReadonlyMap<string, Lsn>;
  /** Tables to read again before following on (see `ChangeBatch.rereads`). */
  readonly rereads: readonly string[];
}

/** Rows per table in the change log. */
export interface ChangeLogTableStats {
  readonly table: string;
  readonly changes: number;
  readonly byOp: Readonly<Record<string, number>>;
}

/**
 * A consumer applied in the same store transaction as each batch (e.g. feature tables), so that its
 * state and the checkpoint move together: exactly once.
 */
export interface ChangeConsumer<Tx = unknown> {
  /** Called once when the store opens, outside any batch (start-up checks, building new versions). */
  open?(tx: Tx): Promise<void>;
  /** Applies the changes of a batch inside the store's open transaction `tx`. */
  apply(tx: Tx, batch: ChangeBatch): Promise<void>;
  /** Called after a reset of the change log (a new snapshot), inside `tx`. */
  reset?(tx: Tx): Promise<void>;
}

/** The durable change log (DuckDB by default). */
export interface ChangeLog {
  /** Opens (creating if needed) the log; first call. */
  open(): Promise<void>;
  /** True when the log's consumers need snapshot rows as changes too (see {@link Source.snapshot}); after {@link open}. */
  readonly needsChanges: boolean;
  /** Progress markers; after {@link open}. */
  state(): Promise<ChangeLogState>;
  /** Forgets every change and starts a new snapshot at `lsn` for `tables`; after {@link open}. */
  reset(args: { tables: readonly string[]; lsn: Lsn }): Promise<void>;
  /** Durably records what the source created (kept across {@link reset}); after {@link open}, outside a batch. */
  saveSourceRecord(record: SourceRecord): Promise<void>;
  /**
   * Appends a batch. A complete batch commits with its checkpoint in one transaction; an incomplete one
   * leaves the transaction open for the next batch.
   */
  apply(batch: ChangeBatch): Promise<void>;
  /**
   * Discards an open transaction (after a stream failure mid-transaction); with none open, releases
   * what the log keeps between batches (the engine calls it when a run of batches ends); any time.
   */
  rollback(): Promise<void>;
  /**
   * The latest known row of `table` for each key (for unchanged TOAST values), null where none, in the
   * order of `keys`; sees the open transaction's changes; during apply.
   */
  lastRows(table: string, keys: readonly Row[]): Promise<(Row | null)[]>;
  /** Change counts per table; after {@link open}. */
  stats(): Promise<ChangeLogTableStats[]>;
  /** Every stored schema version (for readers of the log); after {@link open}. */
  schemas(): Promise<(TableSchema & { version: number })[]>;
  /** Closes the store; idempotent. */
  close(): Promise<void>;
}
