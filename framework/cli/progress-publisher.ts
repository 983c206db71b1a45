import type { Logger } from 'pino';
import { formatMicros } from '../features/instant.js';
import { type BatchInfo, msBehind } from '../ingest/batch-info.js';
import type { ChangeLog, OfflineStore } from '../interfaces/index.js';
import { formatPosition, type Position } from '../types.js';
import { type FeatureViewSummary, type IngestProgress, writeProgress } from './status-file.js';

/** How often the progress file is written at most. */
const WRITE_INTERVAL_MS = 1000;

/**
 * What a process that holds the store (`featureflow ingest`, or `serve` reading the source)
 * publishes in the progress file for `status`: changes per table, the checkpoint, the newest source
 * commit and how far behind it the store was, and the feature views. Written at most once a second,
 * and the last batch before the source goes quiet still shows. The views' figures count every
 * history row, so they are read again only every `viewsIntervalMs`, beside the batches (each read on
 * a connection of its own), never holding one up.
 */
export class ProgressPublisher {
  private readonly counts = new Map<string, { table: string; changes: number; byOp: Record<string, number> }>();
  private checkpoint: Position | null = null;
  private newestCommit: bigint | null = null;
  private behindMs: number | null = null;
  private views: readonly FeatureViewSummary[] | undefined;
  private viewsAt = 0;
  private readingViews: Promise<void> | undefined;
  private last = 0;
  private trailing: NodeJS.Timeout | undefined;
  private warned = false;

  private constructor(
    private readonly file: string,
    private readonly command: IngestProgress['command'],
    private readonly log: ChangeLog,
    private readonly offline: OfflineStore,
    private readonly viewsIntervalMs: number,
    private readonly logger: Logger,
  ) {}

  /** Starts from what the (open) log holds: its counts and newest commit. Writes at the first complete batch. */
  static async start(options: {
    readonly file: string;
    readonly command: IngestProgress['command'];
    readonly log: ChangeLog;
    readonly offline: OfflineStore;
    readonly viewsIntervalMs: number;
    readonly logger: Logger;
  }): Promise<ProgressPublisher> {
    const { file, command, log, offline, viewsIntervalMs, logger } = options;
    const publisher = new ProgressPublisher(file, command, log, offline, viewsIntervalMs, logger);
    for (const s of await log.stats()) publisher.counts.set(s.table, { ...s, byOp: { ...s.byOp } });
    const state = await log.state();
    publisher.newestCommit = state.lastCommitTime;
    publisher.checkpoint = state.checkpoint;
    return publisher;
  }

  /**
   * Counts a batch `onBatch` heard; after a complete one, publishes (at most once a second). Returns
   * a promise only when it reads first: after a table's snapshot, whose time it reads from the log
   * between batches, and before the first write, which has the views' figures.
   */
  heard(batch: BatchInfo): Promise<void> | undefined {
    for (const [table, ops] of Object.entries(batch.tables)) {
      const entry = this.counts.get(table) ?? { table, changes: 0, byOp: {} };
      for (const [op, n] of Object.entries(ops)) {
        entry.changes += n;
        entry.byOp[op] = (entry.byOp[op] ?? 0) + n;
      }
      this.counts.set(table, entry);
    }
    if (!batch.complete) return;
    this.checkpoint = batch.checkpoint;
    if (batch.commitTime !== undefined) {
      this.newestCommit = batch.commitTime;
      this.behindMs = msBehind(batch.commitTime);
    }
    const snapshotted = batch.commitTime === undefined && batch.snapshot?.done === true;
    if (snapshotted || this.views === undefined) return this.readThenPublish(snapshotted);
    this.publish();
  }

  /** Reads first, then publishes; a failed read leaves what it would show as it was, never failing the batch. */
  private async readThenPublish(snapshotted: boolean): Promise<void> {
    // A snapshot's rows count at the time it was taken, as the store records them.
    if (snapshotted)
      this.newestCommit = (await this.log.state().catch(() => null))?.lastCommitTime ?? this.newestCommit;
    if (this.views === undefined) {
      this.viewsAt = Date.now();
      this.views = await this.offline.status().catch(() => []);
    }
    this.publish();
  }

  /** Publishes now, with the views read again (at the end of a run). */
  async finish(checkpoint: Position | null): Promise<void> {
    this.checkpoint = checkpoint;
    await this.readingViews;
    this.views = await this.offline.status().catch(() => this.views);
    this.write();
  }

  close(): void {
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }

  private publish(): void {
    if (Date.now() - this.viewsAt >= this.viewsIntervalMs && !this.readingViews) {
      this.viewsAt = Date.now();
      // Shown with the next write; a failed read leaves the figures as they were, to be read again.
      this.readingViews = this.offline
        .status()
        .then((views) => {
          this.views = views;
          this.publish();
        })
        .catch(() => undefined)
        .finally(() => {
          this.readingViews = undefined;
        });
    }
    const since = Date.now() - this.last;
    if (since >= WRITE_INTERVAL_MS) this.write();
    else this.trailing ??= setTimeout(() => this.write(), WRITE_INTERVAL_MS - since).unref();
  }

  /**
   * Writes the file; one that cannot be written (a full disk) is tried again at the next write, with
   * one warning, never failing the run.
   */
  private write(): void {
    this.close();
    this.last = Date.now();
    try {
      this.writeFile();
    } catch (error) {
      if (this.warned) return;
      this.warned = true;
      this.logger.warn(
        { err: error, file: this.file },
        'the progress file cannot be written: `featureflow status` shows older figures until it can',
      );
    }
  }

  private writeFile(): void {
    writeProgress(this.file, {
      pid: process.pid,
      command: this.command,
      updatedAt: new Date(this.last).toISOString(),
      checkpoint: this.checkpoint === null ? null : formatPosition(this.checkpoint),
      newestCommit: this.newestCommit === null ? null : formatMicros(this.newestCommit),
      behindMs: this.behindMs,
      tables: [...this.counts.values()],
      ...(this.views ? { views: this.views } : {}),
    });
  }
}
