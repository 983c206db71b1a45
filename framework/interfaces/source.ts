import type { ChangeBatch, Lsn, TableSchema } from '../types.js';

/**
 * What a source records in the change log about the things it created on its server (a replication
 * slot, a publication…), as JSON: with it the source tells its own from another's, so it never
 * resumes from, alters or drops what another change log uses. Only the source reads it.
 */
export type SourceRecord = Readonly<Record<string, unknown>>;

/** What {@link Source.prepare} checks against. */
export interface PrepareOptions {
  /** What the change log recorded for the source, or null for a new log. */
  readonly record: SourceRecord | null;
  /**
   * The change log's checkpoint once its snapshot is complete (else null): a source whose own
   * position is already past it would skip the changes in between, and refuses to resume.
   */
  readonly checkpoint: Lsn | null;
}

/** What a source found while preparing: the schemas of the captured tables and the slot's state. */
export interface PrepareResult {
  /** Schemas of the configured tables, as the catalog gives them now. */
  readonly tables: readonly TableSchema[];
  /** True when the replication slot exists (before this call). */
  readonly slotExists: boolean;
  /** What the change log must record (before the source creates anything further, see {@link SourceRecord}). */
  readonly record: SourceRecord;
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
  /**
   * Checks the server, the tables and that what the log recorded is still its own (refusing a slot
   * or publication another log uses, or a position past the log's checkpoint); creates the
   * publication if missing. May be called first.
   */
  prepare(options: PrepareOptions): Promise<PrepareResult>;
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
  /**
   * Drops the slot and the publication where `record` (the change log's) shows the log created them,
   * and leaves anything else alone; when nothing follows.
   */
  teardown(record: SourceRecord | null): Promise<{ slotDropped: boolean; publicationDropped: boolean; notOwned: string[] }>;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}

