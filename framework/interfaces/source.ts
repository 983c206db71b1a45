import type { ChangeBatch, Position, TableSchema, VersionedSchema } from '../types.js';

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
  readonly checkpoint: Position | null;
  /** True while the log follows the source: a source that can no longer resume fails (with its own coded error). */
  readonly mustResume?: boolean;
}

/** What a source found while preparing. */
export interface PrepareResult {
  /** Schemas of the captured tables, as the source's catalog gives them now. */
  readonly tables: readonly TableSchema[];
  /** True when the source can resume from where the change log stopped (e.g. its replication slot exists). */
  readonly resumable: boolean;
  /** What the change log must record (before the source creates anything further, see {@link SourceRecord}). */
  readonly record: SourceRecord;
}

/** What a snapshot reads. */
export interface SnapshotPlan {
  /** Tables to read; default every captured table. */
  readonly tables?: readonly string[];
  /**
   * Set for tables read on their own while the log follows on (tables added to the configuration,
   * or read again): their batches carry the log's `checkpoint`, and the source's own resume point
   * stays where it is. Without it the snapshot starts the log anew, and following resumes at its
   * point. With `reread`, each table's schema is read anew as version `reread.version`.
   */
  readonly partial?: { readonly checkpoint: Position; readonly reread?: { readonly version: number } };
}

/** An open snapshot: a consistent read of the tables at one position. */
export interface SnapshotSession {
  /** The snapshot's position: every read is stamped with it, and the stream takes over after it. */
  readonly point: Position;
  /**
   * The tables' rows in bounded batches (`ChangeBatch.snapshot` set; only each table's last batch is
   * complete); once.
   */
  read(): AsyncIterable<ChangeBatch>;
  /** Releases the snapshot; after {@link read} is exhausted or failed; idempotent. */
  close(): Promise<void>;
}

/** Options of {@link Source.follow}. */
export interface FollowOptions {
  /** Stops following when aborted (after the current batch). */
  readonly signal?: AbortSignal;
  /** Ends the stream once everything committed up to this position has been yielded (for `--until-caught-up`). */
  readonly until?: Position;
  /**
   * Commit times below this (µs since the Unix epoch) are raised to it, and each commit time to at least
   * the one before: a source may take a commit's timestamp before the commit's place in its order is
   * fixed (PostgreSQL does), so concurrent commits can carry timestamps a little out of commit order,
   * and time-ordered feature history must follow commit order.
   */
  readonly minCommitTime?: bigint;
  /**
   * Per table, the position its snapshot was taken at, where later than the start of the stream (a
   * table added to a running log, or read again): the table's changes in transactions committed
   * before it are in its snapshot, and are skipped.
   */
  readonly tableStarts?: ReadonlyMap<string, Position>;
  /** Schemas already stored, so that new schema versions seen in the stream are numbered after them. */
  readonly schemas?: readonly VersionedSchema[];
}

/** What the source holds for the change log, for `featureflow status`. */
export interface SourceStatus {
  /** The position the source last confirmed (everything before it is in the change log), or null. */
  readonly confirmed: Position | null;
  /** The source's newest position. */
  readonly head: Position;
  /** How far the confirmed position is behind the head, in the source's unit (PostgreSQL: bytes of WAL), or null. */
  readonly lag: number | null;
  /** The unit of {@link lag}. */
  readonly lagUnit: string;
  /** What the source holds on its server (e.g. a slot and a publication): name → its state. */
  readonly holds: Readonly<Record<string, string>>;
}

/** What {@link Source.teardown} did. */
export interface TeardownResult {
  /** What it dropped (e.g. `slot featureflow`). */
  readonly dropped: readonly string[];
  /** What exists but the change log did not create, so was left alone. */
  readonly leftAlone: readonly string[];
}

/**
 * A change source. Call order: {@link prepare}; then {@link openSnapshot} when the log starts (or
 * tables are added or read again); then {@link follow}, {@link confirm} after each durable batch;
 * {@link close} at the end.
 */
export interface Source {
  /**
   * Checks the server, the tables and that what the log recorded is still its own (refusing what
   * another log uses, or a position past the log's checkpoint); creates what it needs to exist
   * before a snapshot (a publication). First call.
   */
  prepare(options: PrepareOptions): Promise<PrepareResult>;
  /**
   * Opens a consistent snapshot of the tables. After {@link prepare}; a source without snapshots
   * (one that replays its whole history through {@link follow}) leaves it out.
   */
  openSnapshot?(plan: SnapshotPlan): Promise<SnapshotSession>;
  /** Streams committed transactions after `from` (a checkpoint), in order, as bounded batches; after {@link prepare}. */
  follow(from: Position, options?: FollowOptions): AsyncIterable<ChangeBatch>;
  /** The source's current position (what `--until-caught-up` must reach); after {@link prepare}. */
  currentPosition(): Promise<Position>;
  /** Tells the source everything up to `position` is durable, so it may release what it keeps for it; during {@link follow}. */
  confirm(position: Position): void;
  /** What the source holds for the change log whose record this is; any time. */
  status(record: SourceRecord | null): Promise<SourceStatus>;
  /**
   * Drops what `record` (the change log's) shows the log created, and leaves anything else alone;
   * when nothing follows.
   */
  teardown(record: SourceRecord | null): Promise<TeardownResult>;
  /** Closes every connection; idempotent. */
  close(): Promise<void>;
}
