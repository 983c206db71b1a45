import type { ChangeBatch, Lsn, Row, TableSchema } from './types';

/** What a source found while preparing: the schemas of the captured tables and the slot's state. */
export interface PrepareResult {
  /** Schemas of the configured tables, as the catalog gives them now. */
  readonly tables: readonly TableSchema[];
  /** True when the replication slot exists (before this call). */
  readonly slotExists: boolean;
}

/** Where the initial snapshot starts and the stream takes over. */
export interface SnapshotPoint {
  /** The slot's consistent point: every snapshot read is stamped with it and streaming starts after it. */
  readonly lsn: Lsn;
}

/** Options of {@link Source.follow}. */
export interface FollowOptions {
  /** Stops following when aborted (after the current batch). */
  readonly signal?: AbortSignal;
  /** Ends the stream once everything committed up to this LSN has been yielded (for `--until-caught-up`). */
  readonly until?: Lsn;
  /**
   * Commit times below this (µs since the Unix epoch) are raised to it, and each commit time to at least
   * the one before: PostgreSQL takes a commit's timestamp before the commit record's place in the WAL is
   * fixed, so concurrent commits can carry timestamps a little out of commit order, and time-ordered
   * feature history must follow commit order.
   */
  readonly minCommitTime?: bigint;
  /**
   * Per table, the LSN its snapshot was taken at, where later than the start of the stream (a table
   * added to a running log): the table's changes in transactions committed before it are in its
   * snapshot, and are skipped.
   */
  readonly tableStarts?: ReadonlyMap<string, Lsn>;
  /** Schemas already stored, so that new schema versions seen in the stream are numbered after them. */
  readonly schemas?: readonly (TableSchema & { readonly version: number })[];
  /**
   * With `true`, every batch holds its changes in `ChangeBatch.changes` even when it also carries them
   * in storage form (`ChangeBatch.stored`): the store's consumers read changes.
   */
  readonly changes?: boolean;
}

/** Position and lag of the source's replication slot. */
export interface SlotStatus {
  readonly slot: string;
  readonly exists: boolean;
  readonly active: boolean;
  readonly confirmedFlushLsn: Lsn | null;
  readonly currentWalLsn: Lsn;
  /** Bytes of WAL the slot holds back (current WAL position − confirmed flush). */
  readonly lagBytes: bigint | null;
  readonly publication: string;
  readonly publicationExists: boolean;
}

/**
 * A change source (PostgreSQL by logical replication). Call order: {@link prepare}, then either
 * {@link beginSnapshot} + {@link snapshot} + {@link endSnapshot} (first run) or nothing, then
 * {@link follow}; {@link confirm} after each durable batch; {@link close} at the end.
 */
export interface Source {
  /** Checks the server and the tables, creates the publication if missing. May be called first. */
  prepare(): Promise<PrepareResult>;
  /**
   * Drops any old slot and creates it anew, exporting a snapshot; call after {@link prepare}. With
   * `temporary` (tables added to a log that already follows the slot, or read again), the slot stays
   * and a temporary one exports the snapshot.
   */
  beginSnapshot(options?: { readonly temporary?: boolean }): Promise<SnapshotPoint>;
  /**
   * Reads every table (or only `tables`) in the exported snapshot in bounded batches of rows
   * (`ChangeBatch.snapshot`); with `changes`, each batch also holds its rows as `r` changes. Batches
   * carry the snapshot's LSN as their checkpoint, or `checkpoint` when given (a table added to a log
   * that has moved past it). With `reread` (a table read again mid-stream, see `ChangeBatch.rereads`),
   * the table's schema is read anew as version `reread.version`, and its rows come as stream rows
   * (`ChangeBatch.stored`) after a truncate, the last batch carrying `tableStart`. After {@link beginSnapshot}.
   */
  snapshot(options?: {
    readonly changes?: boolean;
    readonly tables?: readonly string[];
    readonly checkpoint?: Lsn;
    readonly reread?: { readonly version: number };
  }): AsyncIterable<ChangeBatch>;
  /** Releases the exported snapshot; after {@link snapshot} is exhausted (or failed). */
  endSnapshot(): Promise<void>;
  /** Streams committed transactions after `from` (a checkpoint), in order, as bounded batches; after {@link prepare}. */
  follow(from: Lsn, options?: FollowOptions): AsyncIterable<ChangeBatch>;
  /** The source's current write position (what `--until-caught-up` must reach); after {@link prepare}. */
  currentPosition(): Promise<Lsn>;
  /** Tells the server everything up to `lsn` is durable, so the slot may release WAL; during {@link follow}. */
  confirm(lsn: Lsn): void;
  /** Slot and publication state; any time. */
  status(): Promise<SlotStatus>;
  /** Drops the slot and the publication; when nothing follows. */
  teardown(): Promise<{ slotDropped: boolean; publicationDropped: boolean }>;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}

/** What the change log holds about its own progress. */
export interface ChangeLogState {
  /** LSN up to which every change is durable, or null before the first snapshot completed. */
  readonly checkpoint: Lsn | null;
  /** True once the initial snapshot of every table is durable. */
  readonly snapshotDone: boolean;
  /** Tables the log was started with (qualified names), or null when empty. */
  readonly tables: readonly string[] | null;
  /** Slot the log follows. */
  readonly slot: string | null;
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
  reset(args: { slot: string; tables: readonly string[]; lsn: Lsn }): Promise<void>;
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
