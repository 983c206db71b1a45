import { inject, injectable, optional } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config.js';
import { FeatureflowError, isRetriable } from '../errors.js';
import type { Materialized, Materializer } from '../features/materialize.js';
import type {
  ChangeBus,
  ChangeLog,
  ChangeLogState,
  ChangePublisher,
  PrepareResult,
  SnapshotPlan,
  SnapshotSession,
  Source,
} from '../interfaces/index.js';
import { Linger, yieldToEventLoop } from '../linger.js';
import { TOKENS } from '../tokens.js';
import { formatPosition, type ChangeBatch, type Position, type TableSchema } from '../types.js';
import { batchInfo, type BatchInfo } from './batch-info.js';
import { Publishers } from './publishers.js';
import { readAhead } from './read-ahead.js';
import { Backoff, describeError, retry } from './retry.js';
import { fillUnchangedToast } from './toast-filler.js';

export type { BatchInfo } from './batch-info.js';

/**
 * Least ms between two commits where the same process serves the changes before their commit (see
 * `IngestConfig.commitIntervalMs`).
 */
const SERVING_MEANWHILE_INTERVAL_MS = 250;
/**
 * Least ms between two commits on a bus between processes, whose sends follow the commit. A
 * commit of 30 changes costs the ingest 5–6 ms of CPU (bench/small-commits.ts). Back to
 * back, the commits kept the machine busy whatever the rate: two serve processes on Kafka, one of
 * them ingesting, with the broker and PostgreSQL on two cores, 92–97% busy at 1000 txn/s and 93% at
 * 500. Commits at most every 30 ms: 65–87% busy at 1000 txn/s, commit → prediction p50 34.1–52.2 ms
 * (median 39.4) and p99 69.2–195.8 (median 121.1; 11 runs) against 33.9–86.6 (50.7) and 89.0–211.2
 * (126.5; 7 runs); every 15 ms, 88–94% busy (3 runs; bench/kafka.ts, FF_BENCH_KAFKA_COMMIT_INTERVAL_MS).
 */
const BUS_INTERVAL_MS = 30;

/** Options of one ingest run. */
export interface IngestOptions {
  /** Stop once everything committed before the run started is durable. */
  readonly untilCaughtUp?: boolean;
  /** Stops the run after the current batch. */
  readonly signal?: AbortSignal;
  /** Called after each durable batch (progress display, metrics). */
  readonly onBatch?: (info: BatchInfo) => unknown;
}

/** What one run did. */
export interface IngestResult {
  readonly snapshotted: boolean;
  readonly changesApplied: number;
  readonly checkpoint: Position | null;
}

/**
 * The ingestion engine, as named steps: open the change log, have the source prepare (and check
 * what the log recorded of it), take a snapshot when the log starts (or tables were added), then
 * follow the source; each batch goes through the same stages — fill unchanged TOAST values,
 * materialize feature rows, apply batch and rows durably, confirm to the source. Retriable failures
 * (server restarts, dropped connections) reconnect with backoff and resume from the change log's
 * checkpoint; whatever was in flight is rolled back and received again.
 */
@injectable()
export class IngestEngine {
  constructor(
    @inject(TOKENS.Config) private readonly config: ResolvedConfig,
    @inject(TOKENS.Source) private readonly source: Source,
    @inject(TOKENS.ChangeLog) private readonly log: ChangeLog,
    @inject(TOKENS.Materializer) private readonly materializer: Materializer,
    @inject(TOKENS.Logger) private readonly logger: Logger,
    @inject(TOKENS.ChangeBus) @optional() private readonly bus: ChangeBus | undefined,
    @inject(TOKENS.ChangePublisher) @optional() publisher: ChangePublisher | undefined,
  ) {
    this.publishers = new Publishers(log, materializer, publisher, bus);
    // Changes served in this process before their commit (the in-process bus) need no hurry to the
    // store; otherwise the commit is what makes them visible, or what a publisher waits for (a bus
    // between processes waits a little, for the machine's sake: BUS_INTERVAL_MS).
    this.servingMeanwhile = bus !== undefined && !bus.publisherId;
    this.commitIntervalMs =
      config.ingest.commitIntervalMs ??
      (publisher ? 0 : this.servingMeanwhile ? SERVING_MEANWHILE_INTERVAL_MS : bus ? BUS_INTERVAL_MS : 0);
  }

  /** The in-process bus serves each batch before its commit, while the commit before it runs. */
  private readonly servingMeanwhile: boolean;

  /** Least milliseconds between two commits of streamed changes (see `IngestConfig.commitIntervalMs`). */
  private readonly commitIntervalMs: number;

  /** The publishers and what each has sent. */
  private readonly publishers: Publishers;
  /** The log's checkpoint after the last commit of streamed changes, and whether a transaction was left open there. */
  private committed: { checkpoint: Position; open: boolean } | undefined;

  async run(options: IngestOptions = {}): Promise<IngestResult> {
    const { signal } = options;
    await this.log.open();
    const state = await this.log.state();
    // A table no longer configured is refused before the source prepares (and changes anything on its server).
    if (state.tables && this.config.source.tables) this.addedTables(state.tables, this.config.source.tables);
    const prepared = await this.prepare(state, false);
    const captured = prepared.tables.map((t) => t.table);
    this.publishers.capture(captured);
    this.checkViewsCaptured(captured);
    const added = state.tables ? this.addedTables(state.tables, captured) : [];
    const until = options.untilCaughtUp ? await this.source.currentPosition() : undefined;
    let snapshotted = false;
    let applied = 0;

    if (!state.snapshotDone || !prepared.resumable) {
      if (state.snapshotDone) {
        this.logger.warn(
          'the source cannot resume from the change log (e.g. its replication slot is gone); taking a new snapshot (the change log restarts)',
        );
      } else if (state.checkpoint !== null) {
        this.logger.warn('the previous snapshot did not finish; taking it again from the start');
      }
      applied += await this.snapshot(options, {}, prepared.tables);
      snapshotted = true;
    } else if (added.length > 0) {
      applied += await this.snapshot(
        options,
        { tables: added, partial: { checkpoint: state.checkpoint! } },
        prepared.tables,
      );
      snapshotted = true;
    }
    if (!signal?.aborted) applied += await this.follow(options, until);
    return { snapshotted, changesApplied: applied, checkpoint: (await this.log.state()).checkpoint };
  }

  /**
   * Has the source check the server and what the log recorded of it (refusing to resume past the
   * log's checkpoint or from what another log uses), then records what it will create, durably,
   * before it creates anything more.
   */
  private async prepare(state: ChangeLogState, mustResume: boolean): Promise<PrepareResult> {
    const prepared = await this.source.prepare({
      record: state.sourceRecord,
      checkpoint: state.snapshotDone ? state.checkpoint : null,
      mustResume,
    });
    if (JSON.stringify(prepared.record) !== JSON.stringify(state.sourceRecord))
      await this.log.saveSourceRecord(prepared.record);
    return prepared;
  }

  /**
   * One batch through every stage; confirmed to the source once durable (stream batches). An
   * in-process bus hears the feature rows before the store's commit: the source hands out committed
   * transactions only, so they may be served at once, and a batch received again after a failure
   * is applied online again without effect (writes are position-guarded). A bus between processes
   * hears them after the commit, from the log, so that a crash in between loses nothing.
   */
  private async applyBatch(batch: ChangeBatch): Promise<void> {
    await this.commitBatch(batch, await this.serveBatch(batch));
  }

  /** Fills unchanged TOAST values, materializes the batch's feature rows and hands them to the online side. */
  private async serveBatch(batch: ChangeBatch): Promise<Materialized> {
    const receivedAt = Date.now();
    await fillUnchangedToast(this.log, batch.changes);
    this.materializer.addSchemas(batch.schemas);
    const features = this.materializer.materialize(batch);
    // A bus between processes gets the rows after the commit (Publishers).
    if (this.bus && this.servingMeanwhile && (features.batches.length > 0 || batch.complete)) {
      await this.bus.publish({
        batches: features.batches,
        through: batch.complete ? batch.checkpoint : null,
        receivedAt,
      });
    }
    return features;
  }

  /** Applies the batch and its feature rows durably, then confirms it to the source and sends it to the publisher. */
  private async commitBatch(batch: ChangeBatch, features: Materialized): Promise<void> {
    await this.log.apply(batch, features);
    if (batch.complete && !batch.snapshot) this.source.confirm(batch.checkpoint);
    // A snapshot is published whole before following (its tables' reads share one position).
    if (batch.complete && !batch.snapshot) await this.publishers.publish();
  }

  /**
   * Applies served stream batches in one transaction, committed with the last complete one (those
   * after it stay open for the next group), then confirms and publishes what is durable.
   */
  private async commitGroup(group: readonly Served[], onBatch: IngestOptions['onBatch']): Promise<void> {
    let last = group.length - 1;
    while (last >= 0 && !group[last]!.batch.complete) last--;
    const before = this.committed;
    for (const [i, { batch, features }] of group.entries()) {
      // Appending a batch is mostly synchronous: let changes that arrive meanwhile be served between two.
      if (i > 0) await yieldToEventLoop();
      const published = i === last ? this.publishers.pending() : undefined;
      await this.log.apply(batch, features, {
        commit: i === last || !batch.complete,
        published,
        servingMeanwhile: this.servingMeanwhile,
      });
      if (batch.schemas.length > 0) this.publishers.schemasAdded();
      if (i === last) {
        this.publishers.recorded(published);
        this.source.confirm(batch.checkpoint);
        this.committed = { checkpoint: batch.checkpoint, open: false };
        // Whole transactions when the commit before left none open: sent from memory where possible,
        // while the next group commits.
        await this.publishers.afterCommit(
          before && !before.open ? { after: before.checkpoint, served: group.slice(0, last + 1) } : undefined,
        );
      }
    }
    if (last < group.length - 1 && this.committed) this.committed = { ...this.committed, open: true };
    for (const { batch } of group) await onBatch?.(batchInfo(batch));
  }

  /**
   * The snapshot that starts the log (`plan.partial` unset), or one of some tables of a log that
   * already follows its source (added to the configuration, or read again): read at a snapshot of
   * their own, their batches carrying the log's checkpoint, an added table joining the log's tables
   * as its snapshot commits. The stream then skips their changes committed before that snapshot
   * (`FollowOptions.tableStarts`). A source without snapshots starts the log with each table empty
   * and replays its history through follow.
   */
  private async snapshot(
    options: IngestOptions,
    plan: SnapshotPlan,
    captured: readonly TableSchema[],
  ): Promise<number> {
    const session: SnapshotSession = this.source.openSnapshot
      ? await this.source.openSnapshot(plan)
      : emptySnapshot(captured, plan);
    let rows = 0;
    try {
      if (plan.partial) {
        const what = plan.partial.reread
          ? 'reading the table again'
          : 'taking a snapshot of the tables added to the configuration';
        this.logger.info({ tables: plan.tables, position: formatPosition(session.point) }, what);
      } else {
        await this.log.reset({ tables: captured.map((t) => t.table), point: session.point });
      }
      for await (const batch of readAhead(session.read())) {
        await this.applyBatch(batch);
        rows += batch.size;
        await options.onBatch?.(batchInfo(batch));
        if (options.signal?.aborted) break;
      }
    } finally {
      // A table cut short (stop or failure) is rolled back whole; the next run snapshots again.
      await this.log.rollback();
      await this.log.release();
      await session.close();
    }
    this.logger.info({ rows, position: formatPosition(session.point) }, 'snapshot done');
    return rows;
  }

  /**
   * Follows the source from the log's checkpoint, batch by batch, until stopped (or, with `until`,
   * caught up); reads tables again where the log recorded it; reconnects after retriable failures.
   */
  private async follow(options: IngestOptions, until: Position | undefined): Promise<number> {
    const { signal } = options;
    const backoff = new Backoff(this.config.ingest.maxBackoffSeconds * 1000);
    let applied = 0;
    // While a batch commits, the next one is received and served online (the commit → served
    // latency does not wait for the previous batch's commit).
    const committing = new CommitQueue(
      (group) => this.commitGroup(group, options.onBatch),
      this.config.ingest.batchSize * 2,
      new Linger(this.commitIntervalMs),
      () => this.publishers.drain(),
    );
    while (!signal?.aborted) {
      const state = await this.log.state();
      const from = state.checkpoint!;
      let rereadNext = false;
      try {
        // Tables whose rows changed without changes in the stream are read again before following on
        // (a failure here is retried like the stream's).
        if (state.rereads.length > 0) {
          for (const table of state.rereads) {
            const versions = (await this.log.schemas()).filter((s) => s.table === table).map((s) => s.version);
            const plan = {
              tables: [table],
              partial: { checkpoint: from, reread: { version: Math.max(0, ...versions) + 1 } },
            };
            applied += await this.snapshot(options, plan, []);
          }
          continue;
        }
        await this.publishers.publish();
        this.committed = { checkpoint: from, open: false };
        this.logger.info(
          { from: formatPosition(from), until: until === undefined ? undefined : formatPosition(until) },
          'following the source',
        );
        const stream = this.source.follow(from, {
          signal,
          until,
          schemas: await this.log.schemas(),
          tableStarts: state.tableStarts,
          ...(state.lastCommitTime === null ? {} : { minCommitTime: state.lastCommitTime }),
        });
        for await (const batch of stream) {
          // Batches still committing hold the log's newest images of their rows.
          if (batch.changes.some((c) => c.unchangedToast)) await committing.settle();
          await committing.add({ batch, features: await this.serveBatch(batch) });
          // The stream is about to end (caught up, or stopped): confirm while it can still tell the source.
          if (signal?.aborted || (until !== undefined && batch.complete && batch.checkpoint >= until))
            await committing.settle();
          applied += batch.size;
          backoff.reset();
          if (batch.rereads) {
            await committing.settle();
            for (const [table, columns] of Object.entries(batch.rereads)) {
              this.logger.warn(
                { table, columns },
                'columns were added with a default, which the rows already there hold without a change in the stream: reading the table again',
              );
            }
            // The transaction that changed them is durable (and the tables recorded with it): stop following to read them.
            rereadNext = true;
            break;
          }
        }
        await committing.settle();
        await this.publishers.save();
        await this.log.release();
        if (rereadNext) continue;
        if (until !== undefined || signal?.aborted) break;
      } catch (error) {
        await committing.abandon();
        await this.log.rollback();
        await this.log.release();
        if (!isRetriable(error)) throw error;
        // Stopping anyway: what was committed is durable, and the next run resumes from the checkpoint.
        if (signal?.aborted) {
          this.logger.info({ err: describeError(error) }, 'the source failed while stopping; stopped');
          break;
        }
        this.logger.warn({ err: describeError(error), retryInMs: backoff.nextMs }, 'the source failed; reconnecting');
        await backoff.wait(signal);
        if (signal?.aborted) break;
        await retry(async () => this.prepare(await this.log.state(), true), {
          maxBackoffMs: this.config.ingest.maxBackoffSeconds * 1000,
          signal,
          onRetry: (e, waitMs) =>
            this.logger.warn({ err: describeError(e), retryInMs: waitMs }, 'the source is unavailable; retrying'),
        });
      }
    }
    return applied;
  }

  /** Every view must read a captured table (refused up front, before anything is written). */
  private checkViewsCaptured(captured: readonly string[]): void {
    for (const view of this.materializer.registry.views) {
      if (!captured.includes(view.source)) {
        throw new FeatureflowError(
          'FF_FEATURE_DEFINITION',
          `feature view ${view.name} v${view.version} reads ${view.source}, which is not captured (the source captures ${captured.join(', ')}); add it to the source's tables`,
        );
      }
    }
  }

  /** The captured tables the log does not hold yet (each gets a snapshot of its own); a table no longer captured is refused. */
  private addedTables(stored: readonly string[], captured: readonly string[]): string[] {
    const removed = stored.filter((t) => !captured.includes(t));
    if (removed.length > 0) {
      throw new FeatureflowError(
        'FF_TABLES_CHANGED',
        `the change log holds tables ${removed.join(', ')}, which the configuration no longer lists (it lists ${captured.join(', ')}); ` +
          "add them back to the source's tables (tables can be added, not removed), or start a new log: run " +
          '`featureflow teardown --yes` and point the store at a new file (or delete the old one)',
      );
    }
    return captured.filter((t) => !stored.includes(t));
  }
}

/**
 * The snapshot of a source that has none: each table starts empty (one empty, complete batch that
 * records its schema), and its whole history comes through follow, from position 0.
 */
function emptySnapshot(captured: readonly TableSchema[], plan: SnapshotPlan): SnapshotSession {
  const tables = captured.filter((t) => !plan.tables || plan.tables.includes(t.table));
  return {
    point: plan.partial?.checkpoint ?? 0n,
    async *read() {
      for (const schema of tables) {
        yield {
          groups: [],
          changes: [],
          changeIndexes: [],
          size: 0,
          complete: true,
          checkpoint: plan.partial?.checkpoint ?? 0n,
          schemas: [{ ...schema, version: 1 }],
          snapshot: { table: schema.table, done: true, point: plan.partial?.checkpoint ?? 0n, time: 0n, reread: false },
        } satisfies ChangeBatch;
      }
    },
    async close() {},
  };
}

/** A served batch waiting for its commit. */
interface Served {
  readonly batch: ChangeBatch;
  readonly features: Materialized;
}

/**
 * The stream batches served online and waiting for their commit, committed apart from the serving:
 * in order, the batches that waited meanwhile in one transaction (group commit: under load, one
 * commit for many small batches), a commit starting at least the linger's interval after the one
 * before unless a caller settles or half the bound waits. After a failure nothing later is applied
 * (the log never holds a gap); the failure is thrown by the next add or settle. Bounded: past
 * `maxChanges` waiting changes, add waits for the commit under way. A commit's sends may go on
 * while the next group commits: when nothing waits, the queue waits for them (`drain`) before it
 * is idle, so that settling means sent too, and a failed send is thrown like a failed commit.
 */
class CommitQueue {
  private readonly waiting: Served[] = [];
  private changes = 0;
  private running: Promise<void> | undefined;
  private failure: { readonly error: unknown } | undefined;
  private wake: (() => void)[] = [];
  private settling = 0;

  constructor(
    private readonly commit: (served: readonly Served[]) => Promise<void>,
    private readonly maxChanges: number,
    private readonly linger: Linger,
    private readonly drain: () => Promise<void>,
  ) {}

  private readonly hurried = (): boolean => this.settling > 0 || this.changes * 2 >= this.maxChanges;

  /** Queues a served batch for commit, once there is room. */
  async add(served: Served): Promise<void> {
    while (!this.failure && this.running && this.changes + served.batch.size > this.maxChanges)
      await new Promise<void>((resolve) => this.wake.push(resolve));
    if (this.failure) throw this.failure.error;
    this.waiting.push(served);
    this.changes += served.batch.size;
    this.running ??= this.run();
    this.linger.hurry();
  }

  /** Waits until everything queued is committed (at once, without lingering); throws a commit's failure. */
  async settle(): Promise<void> {
    this.settling++;
    try {
      this.linger.hurry();
      while (this.running) await this.running;
    } finally {
      this.settling--;
    }
    if (this.failure) throw this.failure.error;
  }

  private fail(error: unknown): void {
    this.failure = { error };
    this.waiting.length = 0;
  }

  /** Waits for the commit under way to end and forgets what waits (another failure is being handled). */
  async abandon(): Promise<void> {
    this.waiting.length = 0;
    this.settling++;
    this.linger.hurry();
    while (this.running) await this.running;
    this.settling--;
    this.changes = 0;
    this.failure = undefined;
  }

  private async run(): Promise<void> {
    for (;;) {
      while (this.waiting.length > 0 && !this.failure) {
        await this.linger.wait(this.hurried);
        if (this.waiting.length === 0) break;
        const group = this.waiting.splice(0);
        try {
          await this.commit(group);
        } catch (error) {
          this.fail(error);
        }
        this.changes = this.waiting.reduce((n, s) => n + s.batch.size, 0);
        for (const resolve of this.wake.splice(0)) resolve();
      }
      try {
        await this.drain();
      } catch (error) {
        if (!this.failure) this.fail(error);
      }
      if (this.waiting.length === 0 || this.failure) break;
    }
    this.running = undefined;
    for (const resolve of this.wake.splice(0)) resolve();
  }
}
