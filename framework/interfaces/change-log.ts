import type { Materialized } from '../features/materialize.js';
import type { Change, ChangeBatch, Position, Row, VersionedSchema } from '../types.js';
import type { PublishedPositions } from './change-publisher.js';
import type { SourceRecord } from './source.js';

/** How {@link ChangeLog.apply} ends a complete batch. */
export interface ApplyOptions {
  /** False: leave the transaction open for the next batches (group commit); true by default. */
  readonly commit?: boolean;
  /**
   * Per publisher, the newest commit position it sent since it was last recorded: recorded with
   * this batch's commit (as {@link PublishedPositions.savePublished} would), without a commit of its own.
   */
  readonly published?: ReadonlyMap<string, Position>;
  /**
   * True when the process serves changes while this commit runs (the in-process bus serves each
   * batch before its commit): the store keeps its writes off the calling thread, where the serving
   * runs, at some cost per commit. Otherwise (the default) it writes the cheapest way: the commit is
   * what makes the changes visible, or what publishers wait for.
   */
  readonly servingMeanwhile?: boolean;
}

/** What the change log holds about its own progress. */
export interface ChangeLogState {
  /** Position up to which every change is durable, or null before the first snapshot completed. */
  readonly checkpoint: Position | null;
  /** True once the initial snapshot of every table is durable. */
  readonly snapshotDone: boolean;
  /** Tables the log was started with (qualified names), or null when empty. */
  readonly tables: readonly string[] | null;
  /** What the source recorded of what it created for this log (see {@link SourceRecord}), or null. */
  readonly sourceRecord: SourceRecord | null;
  /** The newest commit time in the log (µs since the Unix epoch), or null when empty. */
  readonly lastCommitTime: bigint | null;
  /** The position each table's completed snapshot was taken at (its latest, for a table read again). */
  readonly tableStarts: ReadonlyMap<string, Position>;
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
 * The durable change log (DuckDB by default), and with it the offline history of the feature views:
 * each batch, the feature rows materialized from it and the checkpoint commit together (exactly once).
 */
export interface ChangeLog extends PublishedPositions {
  /**
   * Opens (creating if needed) the log, and brings the feature history up to the definitions: a
   * changed definition without a version bump is refused, a new version is built from the log. First call.
   */
  open(): Promise<void>;
  /** Progress markers; after {@link open}. */
  state(): Promise<ChangeLogState>;
  /** Forgets every change (and feature history) and starts a new snapshot at `point` for `tables`; after {@link open}. */
  reset(args: { readonly tables: readonly string[]; readonly point: Position }): Promise<void>;
  /** Durably records what the source created (kept across {@link reset}); after {@link open}, outside a batch. */
  saveSourceRecord(record: SourceRecord): Promise<void>;
  /**
   * Appends a batch and the feature rows made of it. A complete batch commits with its checkpoint in
   * one transaction; an incomplete one leaves the transaction open for the next batch, and so does a
   * complete one applied with `commit: false` (a later batch's commit makes both durable at once).
   */
  apply(batch: ChangeBatch, features: Materialized, options?: ApplyOptions): Promise<void>;
  /** Discards an open transaction (after a failure mid-transaction); any time. */
  rollback(): Promise<void>;
  /** Releases what the log keeps open between batches (appenders); when a run of batches ends. */
  release(): Promise<void>;
  /**
   * The latest known row of `table` for each key (for unchanged TOAST values), null where none, in the
   * order of `keys`; sees the open transaction's changes; during apply.
   */
  lastRows(table: string, keys: readonly Row[]): Promise<(Row | null)[]>;
  /**
   * The changes of `tables` whose transactions committed after `position`, in commit order, in
   * bounded pages: what a stop may have left unscored. After {@link open}.
   */
  changesAfter(position: Position, tables: readonly string[]): AsyncIterable<readonly Change[]>;
  /** Change counts per table; after {@link open}. */
  stats(): Promise<ChangeLogTableStats[]>;
  /** Every stored schema version (for readers of the log); after {@link open}. */
  schemas(): Promise<VersionedSchema[]>;
  /** Closes the store; idempotent. */
  close(): Promise<void>;
}
