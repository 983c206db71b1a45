import { FeatureflowError } from '../errors.js';
import type { FeatureRowBatch } from '../features/feature-rows.js';
import type { FeatureView } from '../features/feature-view.js';
import { Backoff, describeError } from '../ingest/retry.js';
import type { FeatureRowsListener, FeatureRowsMessage } from '../interfaces/change-bus.js';
import type { OnlineStore } from '../interfaces/online-store.js';
import { formatPosition, type Position } from '../types.js';
import type { ServingContext } from './serving-context.js';
import { viewId } from './watermark-board.js';

/**
 * Writes the offline store's latest rows of `view` into `store` (streamed, in bounded memory) and
 * returns the position they reflect (the offline store's checkpoint), or null when it holds none.
 * The runtime provides it; the updater calls it when the store needs a load (at start, and when a
 * shared store restarted empty) and sets the watermark itself afterwards.
 */
export type OnlineLoader = (view: FeatureView, store: OnlineStore) => Promise<Position | null>;

/** A bus message once its rows are in the online store. */
export interface WrittenMessage extends FeatureRowsMessage {
  /** When its rows (and watermark) were written, ms since the Unix epoch. */
  readonly writtenAt: number;
}

/** Where the updater hands written messages on: the scoring loop. */
export interface WrittenMessageQueue {
  /** Resolves once the message is queued; waits while the queue is full (back-pressure on the bus). */
  enqueue(message: WrittenMessage): Promise<void>;
}

/** Options of {@link OnlineUpdater}. */
export interface OnlineUpdaterOptions {
  /** Loads a view from the offline store. Default: none (the store starts empty). */
  readonly load?: OnlineLoader;
  /** The scoring loop; default none (features only). */
  readonly scoring?: WrittenMessageQueue;
  /** Longest wait between attempts to write a failing online store, ms. Default 5 000. */
  readonly maxBackoffMs?: number;
  /** How often the store is probed for reachability and lost data, ms; 0 turns probing off. Default 1 000. */
  readonly probeIntervalMs?: number;
  /**
   * Feature rows kept after they were written, to write again after a reload: a shared store that
   * restarted empty is loaded from the offline store, which may not yet hold the newest rows. Default 10 000.
   */
  readonly replayRows?: number;
}

/** The health components the updater reports under. */
const WRITES = 'online-store';
const PROBE = 'online-store-reachable';

interface Written {
  readonly batches: readonly FeatureRowBatch[];
  readonly rows: number;
  /** The newest row's position. */
  readonly last: Position;
}

/**
 * Keeps the online store current from the bus: writes each message's feature rows (served view
 * versions only), then, when the message ends a transaction, the served views' watermarks, and
 * advances the in-memory watermark board that read-after-write requests wait on. A failing store
 * is retried with backoff until it works (nothing is dropped; the bus waits, and so does the
 * ingest), while health reports why. A store found empty after a restart is loaded again, and the
 * rows written since are written again (writes are idempotent per entity and position).
 *
 * @example
 * const updater = new OnlineUpdater(context, { load, scoring: loop });
 * bus.subscribe(updater.listener);
 * await updater.start();
 */
export class OnlineUpdater {
  /** Subscribe it to the bus before the ingest publishes; messages wait until {@link start} has loaded the store. */
  readonly listener: FeatureRowsListener = (message) => this.handle(message);
  private readonly maxBackoffMs: number;
  private readonly replayRows: number;
  private readonly abort = new AbortController();
  private startedResolve!: () => void;
  private readonly started = new Promise<void>((resolve) => (this.startedResolve = resolve));
  private stopped = false;
  /** Serializes writes, loads and reloads. */
  private lock: Promise<void> = Promise.resolve();
  private readonly tail: Written[] = [];
  private tailRows = 0;
  /** The newest position of the rows that left {@link tail}; -1 when none did. */
  private dropped = -1n;
  /** Set while a write failed and until the store was checked for lost data after it recovered. */
  private recovering = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(
    private readonly context: ServingContext,
    private readonly options: OnlineUpdaterOptions = {},
  ) {
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.replayRows = options.replayRows ?? 10_000;
  }

  /**
   * Opens the store and loads every served view it needs loaded (retrying while the store fails,
   * health saying why), seeds the watermark board, marks the context loaded (health turns ready) and
   * starts probing. Once; returns early when stopped meanwhile.
   */
  async start(): Promise<void> {
    try {
      await this.exclusive(async () => {
        await this.persist('connecting to the online store', () => this.context.store.open());
        await this.loadViews(true);
      });
    } catch (error) {
      if (this.stopped) return;
      throw error;
    }
    this.context.health.set(WRITES, null);
    this.context.health.markLoaded();
    this.startedResolve();
    const interval = this.options.probeIntervalMs ?? 1_000;
    if (interval > 0) {
      this.probeTimer = setInterval(() => void this.probe(), interval);
      this.probeTimer.unref();
    }
    this.context.logger?.info({ views: this.context.views.map(viewId) }, 'online store loaded; following the bus');
  }

  /** Stops retrying and probing, and waits for the write under way; later messages are refused. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    clearInterval(this.probeTimer);
    this.startedResolve();
    await this.lock;
  }

  private async handle(message: FeatureRowsMessage): Promise<void> {
    await this.started;
    if (this.stopped) throw new Error('the online updater is stopped: close the bus before stopping it');
    const { context } = this;
    const batches: FeatureRowBatch[] = [];
    let rows = 0;
    for (const batch of message.batches) {
      const view = context.served(batch.view);
      if (!view || batch.rows.length === 0) continue;
      batches.push(view === batch.view ? batch : { view, rows: batch.rows });
      rows += batch.rows.length;
      context.metrics.changes.inc({ view: view.name, version: String(view.version) }, batch.rows.length);
    }
    const through = message.through;
    if (batches.length === 0 && through === null) return message.settle?.();
    await this.exclusive(async () => {
      if (batches.length > 0) {
        await this.persist(`writing ${rows} feature rows to the online store`, () => context.store.write(batches));
        this.remember(batches, rows);
      }
      // The store failed and works again: a server that restarted lost what it held.
      if (this.recovering) await this.recover();
      if (through !== null) {
        // One part of a view's stream moves that part's position; the view is served through its
        // lowest part, whichever process wrote it (a shared store): read it back for the board.
        const part = message.part;
        const served = part ? context.served(part.view) : undefined;
        const views = part ? (served ? [served] : []) : context.views;
        const where = part ? { index: part.index, count: part.count } : undefined;
        // A store that lost its data without failing a write (restarted between two) refuses the
        // watermark: load it again first. Read-after-write waiters are released only after that.
        while (
          !(
            await this.persist(`setting the online watermark to ${formatPosition(through)}`, () =>
              Promise.all(views.map((v) => context.store.setWatermark(v, through, where))),
            )
          ).every(Boolean)
        ) {
          this.recovering = true;
          await this.recover();
        }
        for (const v of views) {
          const mark = part
            ? await this.persist(`reading the online watermark of ${viewId(v)}`, () => context.store.watermark(v))
            : through;
          if (mark !== null) context.board.advance(v, mark);
        }
      }
    });
    // A part's position says nothing of the other parts' predictions: the sinks' watermark stays.
    const written = {
      batches,
      through: message.part ? null : through,
      receivedAt: message.receivedAt,
      writtenAt: Date.now(),
    };
    if (!this.options.scoring) return message.settle?.();
    // The scoring loop settles the message once its predictions are in the sinks.
    await this.options.scoring.enqueue(message.settle ? { ...written, settle: message.settle } : written);
  }

  /** Loads again what a store that failed lost (rows written since included); health turns ready after it. */
  private async recover(): Promise<void> {
    await this.loadViews(false);
    this.recovering = false;
    this.context.health.set(WRITES, null);
    this.context.logger?.info('the online store works again; no row was lost');
  }

  /**
   * Loads the views the store needs loaded. At start the others' watermarks seed the board; later
   * (a store that lost its data) the rows this process wrote since are written again after the load.
   */
  private async loadViews(atStart: boolean): Promise<void> {
    const { context } = this;
    const { store, board } = context;
    for (const view of context.views) {
      const id = viewId(view);
      const needed = await this.persist(`checking whether ${id} needs a load`, () => store.needsLoad(view));
      if (!needed) {
        if (atStart) {
          const mark = await this.persist(`reading the watermark of ${id}`, () => store.watermark(view));
          if (mark !== null) board.advance(view, mark);
        }
        continue;
      }
      if (!atStart) {
        context.logger?.warn(
          { view: id },
          'the online store lost the features of this view (restarted empty or flushed); loading them again',
        );
        context.health.set(WRITES, `the online store lost the features of ${id}; loading them again`);
      }
      let loaded: Position | null = null;
      const load = this.options.load;
      if (load) {
        loaded = await this.persist(`loading ${id} from the offline store`, async () => {
          const at = await load(view, store);
          if (!atStart && this.dropped > (at ?? -1n)) {
            // Rows up to `dropped` are neither in the load nor kept here: wait for the offline store.
            throw new FeatureflowError(
              'FF_SERVE_NOT_READY',
              `the offline store holds ${id} through ${at === null ? 'nothing' : formatPosition(at)}, and rows up to ` +
                `${formatPosition(this.dropped)} are no longer kept in memory; loading again once the offline store has them`,
              { retriable: true },
            );
          }
          return at;
        });
      } else if (!atStart && this.dropped >= 0n) {
        context.logger?.error(
          { view: id, through: formatPosition(this.dropped) },
          'the online store lost its data and no loader is configured: features of entities unchanged since are missing until they change',
        );
      }
      if (!atStart) {
        const replay = this.tail.flatMap((w) => w.batches.filter((b) => viewId(b.view) === id));
        if (replay.length > 0) await this.persist(`writing ${id}'s recent rows again`, () => store.write(replay));
      }
      const known = board.get(view);
      const mark = loaded === null ? known : known === null || loaded > known ? loaded : known;
      if (mark !== null) {
        await this.persist(`setting the watermark of ${id}`, () => store.setWatermark(view, mark));
        board.advance(view, mark);
      }
    }
  }

  /** Keeps written rows for a replay after a reload, up to `replayRows`. */
  private remember(batches: readonly FeatureRowBatch[], rows: number): void {
    if (this.replayRows === 0) return;
    let last = -1n;
    for (const b of batches) {
      const p = b.rows[b.rows.length - 1]!.position;
      if (p > last) last = p;
    }
    this.tail.push({ batches, rows, last });
    this.tailRows += rows;
    while (this.tailRows > this.replayRows && this.tail.length > 0) {
      const old = this.tail.shift()!;
      this.tailRows -= old.rows;
      if (old.last > this.dropped) this.dropped = old.last;
    }
  }

  /** Runs `attempt` until it succeeds, with backoff, reporting the failure in health meanwhile; gives up only when stopped. */
  private async persist<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(this.maxBackoffMs);
    for (let failures = 0; ; failures++) {
      try {
        return await attempt();
      } catch (error) {
        if (this.stopped) throw error;
        const { context } = this;
        this.recovering = true;
        context.metrics.onlineWriteErrors.inc();
        const reason = `${what} failed (${describeError(error)}); retrying in ${backoff.nextMs} ms`;
        context.health.set(WRITES, reason);
        if (failures === 0) {
          const log = { err: error, retryInMs: backoff.nextMs };
          if (error instanceof FeatureflowError && error.retriable)
            context.logger?.warn(log, `${what} failed; retrying until it works`);
          else context.logger?.error(log, `${what} failed with an error that may not go away; retrying until it works`);
        }
        await backoff.wait(this.abort.signal);
      }
    }
  }

  /** Checks that the store answers and still holds what was written; loads again what it lost. */
  private async probe(): Promise<void> {
    if (this.probing || this.stopped) return;
    this.probing = true;
    const { context } = this;
    try {
      let marks: (Position | null)[];
      try {
        marks = await Promise.all(context.views.map((v) => context.store.watermark(v)));
      } catch (error) {
        if (!context.health.problem(PROBE)) context.logger?.warn({ err: error }, 'the online store cannot be reached');
        context.health.set(PROBE, `the online store cannot be reached (${describeError(error)})`);
        return;
      }
      context.health.set(PROBE, null);
      if (context.views.some((v, i) => marks[i] === null && context.board.get(v) !== null)) {
        await this.exclusive(async () => {
          await this.loadViews(false);
          context.health.set(WRITES, null);
        });
      }
    } catch (error) {
      if (!this.stopped) context.logger?.error({ err: error }, 'reloading the online store failed');
    } finally {
      this.probing = false;
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
