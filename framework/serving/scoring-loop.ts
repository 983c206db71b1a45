import { entityId } from '../features/entity-key.js';
import { compareRows, type FeatureRow } from '../features/feature-rows.js';
import type { StoredFeatureValue } from '../features/feature-values.js';
import { FeatureflowError, isRetriable } from '../errors.js';
import { Backoff, describeError } from '../ingest/retry.js';
import { Linger } from '../linger.js';
import type { OnlineValue } from '../interfaces/online-store.js';
import type { Prediction, PredictionSink } from '../interfaces/prediction-sink.js';
import type { Scorer, ScoringInput, ScoringOutput } from '../interfaces/scorer.js';
import type { Position, Value } from '../types.js';
import type { WrittenMessage, WrittenMessageQueue } from './online-updater.js';
import type { ServingContext } from './serving-context.js';
import { viewId } from './watermark-board.js';

/** Options of {@link ScoringLoop}. */
export interface ScoringLoopOptions {
  /** Where predictions are written, besides the live feed (each open). Default none. */
  readonly sinks?: readonly PredictionSink[];
  /** Feature rows to score that may wait before the bus is made to wait (back-pressure). Default 10 000. */
  readonly maxQueuedRows?: number;
  /** Most rows of waiting messages scored together in one call of the scorer. Default 1 024. */
  readonly maxBatchRows?: number;
  /** Longest wait between attempts when the scorer, the store or a sink fails, ms. Default 5 000. */
  readonly maxBackoffMs?: number;
  /** How long {@link ScoringLoop.stop} lets the queue drain before it gives up retrying, ms. Default 10 000. */
  readonly drainTimeoutMs?: number;
  /**
   * Least time between two writes to the sinks, ms: groups scored meanwhile go in one write (each
   * write's commit has a fixed cost). Skipped while stopping, waited for, or half the bound waits.
   * Default 250.
   */
  readonly sinkIntervalMs?: number;
}

/** A change to predict for: a row with values of one of the service's views. */
interface Candidate {
  /** Index of the row's view among the context's inputs. */
  readonly input: number;
  readonly row: FeatureRow;
  readonly message: WrittenMessage;
}

interface Queued {
  readonly message: WrittenMessage;
  readonly candidates: readonly Candidate[];
}

/** A scored group waiting for the sinks. */
interface Delivery {
  readonly predictions: readonly Prediction[];
  readonly through: Position | null;
  /** The group's rows, counted in the queue's bound until delivered. */
  readonly rows: number;
  /** The group's messages, settled once every sink has its predictions. */
  readonly messages: readonly WrittenMessage[];
}

/** Why a change made no prediction (the label of `featureflow_predictions_skipped_total`). */
type SkipReason = 'missing_feature' | 'expired_feature' | 'null_feature' | 'rejected';

const SCORING = 'scoring';
/** Groups in the scorer at once (a worker holds two batches: it runs one while the next waits). */
const GROUPS_IN_FLIGHT = 2;
const SINKS = 'prediction-sinks';

/**
 * Event-driven predictions: every feature row with values of a view of the scored service (a
 * snapshot read, an insert, an update) makes one prediction for its entity. Deletes and truncates
 * make none: the entity has no features to score. The changed view's features are the row's own
 * values (the features at that change's position); the service's other views are read from the
 * online store (their latest values; one read per view for all the entities scored together). An
 * entity lacking a feature of another view (missing, expired, or null) makes no prediction and is
 * counted in `featureflow_predictions_skipped_total`.
 *
 * Messages wait in a bounded queue (the updater's enqueue waits while it is full, which makes the
 * bus wait); one loop takes them in order, so predictions keep the commit order, per entity and
 * overall. Messages that waited are scored together in one scorer call; while one group is in the
 * scorer the next one is handed to it too, and groups are published in order. Predictions go to the live
 * feed at once, then to every sink in position order with the message's `through` once all its
 * predictions are made. The sinks are written apart from the scoring: a sink's transaction (a DuckDB
 * or PostgreSQL commit, tens of ms on a busy machine) does not hold back the next change's prediction
 * on the feed; groups scored meanwhile go to the sinks together, in order, in one write. Rows waiting
 * for the sinks count in the queue's bound, so a slow sink still makes the bus wait.
 */
export class ScoringLoop implements WrittenMessageQueue {
  private readonly scorer: Scorer;
  private readonly sinks: readonly PredictionSink[];
  private readonly maxQueuedRows: number;
  private readonly maxBatchRows: number;
  private readonly maxBackoffMs: number;
  private readonly drainTimeoutMs: number;
  /** Per input i, per input j: for each key column of j's view, its index in i's view's key. */
  private readonly keyMaps: readonly (readonly (readonly number[])[])[];
  private readonly queue: Queued[] = [];
  /** Rows queued, being scored, or scored and waiting for the sinks. */
  private rows = 0;
  /** Groups handed to the scorer and not yet published. */
  private scoring = 0;
  private readonly deliveries: Delivery[] = [];
  /** The sink writes under way, until {@link deliveries} is empty. */
  private delivering: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private spaceWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private running: Promise<void> | undefined;
  private stopping = false;
  private readonly abort = new AbortController();
  private readonly linger: Linger;
  private readonly hurried = (): boolean =>
    this.stopping || this.spaceWaiters.length > 0 || this.idleWaiters.length > 0 || this.rows * 2 >= this.maxQueuedRows;

  constructor(
    private readonly context: ServingContext,
    options: ScoringLoopOptions = {},
  ) {
    if (!context.scorer) throw new Error('the scoring loop needs a scorer in the serving context');
    this.scorer = context.scorer;
    this.sinks = options.sinks ?? [];
    this.maxQueuedRows = options.maxQueuedRows ?? 10_000;
    this.maxBatchRows = options.maxBatchRows ?? 1_024;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    this.linger = new Linger(options.sinkIntervalMs ?? 250);
    const inputs = context.inputs;
    this.keyMaps = inputs.map((a) => inputs.map((b) => b.view.entity.keys.map((k) => a.view.entity.keys.indexOf(k))));
    context.scoringQueued = () => this.rows;
  }

  /** Rows queued, being scored, or waiting for the sinks. */
  get queued(): number {
    return this.rows;
  }

  /** Starts taking messages from the queue. Once, before the first message is enqueued. */
  start(): void {
    this.running ??= this.run();
  }

  async enqueue(message: WrittenMessage): Promise<void> {
    if (this.stopping) throw new Error('the scoring loop is stopping: stop the updater first');
    const candidates = this.candidatesOf(message);
    // Nothing to predict and no watermark to move: done (its rows are in the online store).
    if (candidates.length === 0 && message.through === null) return message.settle?.();
    // One message larger than the bound still goes in when the queue is empty.
    while (this.rows > 0 && this.rows + candidates.length > this.maxQueuedRows) {
      await new Promise<void>((resolve) => {
        this.spaceWaiters.push(resolve);
        this.linger.hurry();
      });
    }
    this.queue.push({ message, candidates });
    this.rows += candidates.length;
    this.wake?.();
  }

  /** Resolves once every enqueued message was scored and delivered. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.linger.hurry();
    });
  }

  /**
   * Scores and delivers what is queued, then stops. Retries (a failing sink, store or scorer) give up
   * after `drainTimeoutMs`, and what they held is logged as not delivered. Idempotent.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.linger.hurry();
    const timer = setTimeout(() => this.abort.abort(), this.drainTimeoutMs);
    try {
      await this.running;
      while (this.delivering) await this.delivering;
    } finally {
      clearTimeout(timer);
    }
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.scoring === 0 && this.delivering === undefined;
  }

  private settleIdle(): void {
    if (this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Frees queue space once rows are scored and delivered (or given up). */
  private release(rows: number): void {
    this.rows -= rows;
    for (const resolve of this.spaceWaiters.splice(0)) resolve();
  }

  private candidatesOf(message: WrittenMessage): Candidate[] {
    const inputs = this.context.inputs;
    const out: Candidate[] = [];
    let batches = 0;
    for (const batch of message.batches) {
      const id = viewId(batch.view);
      const input = inputs.findIndex((i) => viewId(i.view) === id);
      if (input < 0) continue;
      batches++;
      for (const row of batch.rows)
        if (row.values !== null && row.op !== 'd' && row.op !== 't') out.push({ input, row, message });
    }
    // Each batch is in commit order; rows of several views are merged into one order (stable).
    if (batches > 1) out.sort((a, b) => compareRows(a.row, b.row));
    return out;
  }

  private async run(): Promise<void> {
    // Groups scored at once: while one is in the scorer, the next is handed to it too (it waits
    // beside it, not for the way back to this thread); they are published and delivered in order.
    const flights: Promise<void>[] = [];
    let previous: Promise<void> = Promise.resolve();
    for (;;) {
      if (this.queue.length === 0) {
        this.settleIdle();
        if (this.stopping) {
          await previous;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      while (flights.length >= GROUPS_IN_FLIGHT) await flights.shift();
      const group: Queued[] = [this.queue.shift()!];
      let rows = group[0]!.candidates.length;
      while (this.queue.length > 0 && rows + this.queue[0]!.candidates.length <= this.maxBatchRows) {
        const next = this.queue.shift()!;
        group.push(next);
        rows += next.candidates.length;
      }
      this.scoring++;
      const scored = this.scoreGroup(group);
      // Handled in turn below (a rejection must not count as unhandled meanwhile).
      scored.catch(() => undefined);
      previous = previous.then(async () => {
        let handedOver = false;
        try {
          handedOver = this.finish(group, rows, await scored);
        } catch (error) {
          settle(group, error);
          this.context.logger?.error(
            {
              err: error,
              rows,
              through: group
                .map((q) => q.message.through)
                .filter((t) => t !== null)
                .pop()
                ?.toString(),
            },
            'predictions of these changes were not made or not delivered',
          );
        } finally {
          this.scoring--;
          if (!handedOver) this.release(rows);
          this.settleIdle();
        }
      });
      flights.push(previous);
    }
  }

  /** Scores a group: its predictions, in the group's order. */
  private async scoreGroup(group: readonly Queued[]): Promise<Prediction[]> {
    const { context } = this;
    const candidates = group.flatMap((q) => q.candidates);
    const predictions: Prediction[] = [];
    if (candidates.length === 0) return predictions;
    const others = await this.readOthers(candidates);
    const examples: ScoringInput[] = [];
    const used: Candidate[] = [];
    for (const c of candidates) {
      const example = this.assemble(c, others);
      if (typeof example === 'string') context.metrics.predictionsSkipped.inc({ reason: example });
      else {
        examples.push(example);
        used.push(c);
      }
    }
    const outputs = examples.length > 0 ? await this.score(examples) : [];
    const scoredAt = Date.now();
    outputs.forEach((out, i) => {
      if (out === null) {
        context.metrics.predictionsSkipped.inc({ reason: 'rejected' satisfies SkipReason });
        return;
      }
      predictions.push(this.prediction(used[i]!, out, scoredAt));
    });
    return predictions;
  }

  /** Publishes a scored group on the feed and hands it to the sinks; true when handed to them (which release its rows). */
  private finish(group: readonly Queued[], rows: number, predictions: readonly Prediction[]): boolean {
    const { context } = this;
    if (predictions.length > 0) {
      context.feed.publish(predictions);
      this.observe(predictions);
    }
    let through: Position | null = null;
    for (const q of group) if (q.message.through !== null) through = q.message.through;
    if (this.sinks.length === 0 || (predictions.length === 0 && through === null)) {
      settle(group);
      return false;
    }
    this.deliveries.push({ predictions, through, rows, messages: group.map((q) => q.message) });
    this.delivering ??= this.deliverAll();
    this.linger.hurry();
    return true;
  }

  /** Writes what waits for the sinks, oldest first, merging the groups that waited into one write, until none waits. */
  private async deliverAll(): Promise<void> {
    while (this.deliveries.length > 0) {
      await this.linger.wait(this.hurried);
      const waiting = this.deliveries.splice(0);
      const predictions = waiting.length === 1 ? waiting[0]!.predictions : waiting.flatMap((d) => d.predictions);
      let through: Position | null = null;
      for (const d of waiting) if (d.through !== null) through = d.through;
      try {
        const failures = await Promise.all(this.sinks.map((sink, i) => this.deliver(sink, i, predictions, through)));
        const failure = failures.find((f) => f !== undefined);
        for (const d of waiting) for (const m of d.messages) m.settle?.(failure);
      } finally {
        this.release(waiting.reduce((n, d) => n + d.rows, 0));
      }
    }
    this.delivering = undefined;
    this.settleIdle();
  }

  /** The online values of the service's other views for the candidates' entities: per input, by entity id. */
  private async readOthers(candidates: readonly Candidate[]): Promise<Map<number, Map<string, OnlineValue>>> {
    const { inputs, store } = this.context;
    const out = new Map<number, Map<string, OnlineValue>>();
    if (inputs.length === 1) return out;
    await Promise.all(
      inputs.map(async (input, j) => {
        const keys = new Map<string, Value[]>();
        for (const c of candidates) {
          if (c.input === j) continue;
          const key = this.keyMaps[c.input]![j]!.map((k) => c.row.key[k]!);
          keys.set(entityId(key), key);
        }
        if (keys.size === 0) return;
        const ids = [...keys.keys()];
        const values = await this.retrying(`reading ${viewId(input.view)} to score`, SCORING, () =>
          store.read(input.view, [...keys.values()]),
        );
        out.set(j, new Map(ids.map((id, i) => [id, values[i]!])));
      }),
    );
    return out;
  }

  /** The service's inputs in order for one change, or why it has none. */
  private assemble(c: Candidate, others: Map<number, Map<string, OnlineValue>>): ScoringInput | SkipReason {
    const inputs = this.context.inputs;
    const example: StoredFeatureValue[] = [];
    for (let j = 0; j < inputs.length; j++) {
      let values: readonly StoredFeatureValue[];
      if (j === c.input) values = c.row.values!;
      else {
        const online = others.get(j)?.get(entityId(this.keyMaps[c.input]![j]!.map((k) => c.row.key[k]!)));
        if (online?.status !== 'ok' || online.values === null)
          return online?.status === 'expired' ? 'expired_feature' : 'missing_feature';
        values = online.values;
      }
      for (const f of inputs[j]!.features) {
        const value = values[f];
        if (value === null || value === undefined) return 'null_feature';
        example.push(value);
      }
    }
    return example;
  }

  /**
   * Scores, retrying a failed worker (retriable) until it works; an example the model refuses
   * (not retriable) is scored alone so that only it is skipped (null).
   */
  private async score(examples: readonly ScoringInput[]): Promise<(ScoringOutput | null)[]> {
    try {
      return await this.retrying('scoring', SCORING, () => this.scorer.score(examples));
    } catch (error) {
      if (
        isRetriable(error) ||
        (error instanceof FeatureflowError && error.code === 'FF_SCORER_CLOSED') ||
        this.abort.signal.aborted
      )
        throw error;
      if (examples.length === 1) {
        this.context.logger?.warn({ err: error }, 'the model refused an example; its change makes no prediction');
        return [null];
      }
      const out: (ScoringOutput | null)[] = [];
      for (const example of examples) out.push(...(await this.score([example])));
      return out;
    }
  }

  private prediction(c: Candidate, out: ScoringOutput, scoredAt: number): Prediction {
    const model = this.context.model!;
    const { receivedAt, writtenAt } = c.message;
    const commitMs = Number(c.row.commitTime) / 1000;
    return {
      model: model.name,
      modelVersion: model.version,
      key: c.row.key,
      output: Array.from(out.output),
      ...(out.argmax !== undefined ? { argmax: out.argmax } : {}),
      ...(out.label !== undefined ? { label: out.label } : {}),
      position: c.row.position,
      commitTime: c.row.commitTime,
      predictedAt: scoredAt,
      latency: {
        receivedMs: Math.max(0, receivedAt - commitMs),
        featuresMs: writtenAt - receivedAt,
        scoredMs: scoredAt - writtenAt,
      },
    };
  }

  private observe(predictions: readonly Prediction[]): void {
    const { metrics, model } = this.context;
    metrics.predictions.inc({ model: model!.name }, predictions.length);
    const h = metrics.predictionLatency;
    for (const p of predictions) {
      const { receivedMs, featuresMs, scoredMs } = p.latency;
      h.observe({ stage: 'received' }, receivedMs / 1000);
      h.observe({ stage: 'features' }, featuresMs / 1000);
      h.observe({ stage: 'scored' }, scoredMs / 1000);
      h.observe({ stage: 'total' }, (receivedMs + featuresMs + scoredMs) / 1000);
    }
  }

  /**
   * Writes to one sink, retrying what may pass later; an error that will not is logged and the batch
   * left out of that sink, and returned.
   */
  private async deliver(
    sink: PredictionSink,
    index: number,
    predictions: readonly Prediction[],
    through: Position | null,
  ): Promise<unknown> {
    try {
      await this.retrying(`writing ${predictions.length} predictions to sink ${index}`, `${SINKS}/${index}`, () =>
        sink.write(predictions, through),
      );
      // A failure that did not pass by itself is reported until the sink takes a write again.
      this.context.health.set(`${SINKS}/${index}`, null);
      return undefined;
    } catch (error) {
      this.context.health.set(
        `${SINKS}/${index}`,
        `writing predictions to sink ${index} failed (${describeError(error)})`,
        {
          critical: false,
        },
      );
      this.context.logger?.error(
        { err: error, sink: index, predictions: predictions.length },
        'predictions were not written to a sink',
      );
      return error;
    }
  }

  /** Runs `attempt` until it succeeds while it fails with a retriable error (until stopping times out). */
  private async retrying<T>(what: string, component: string, attempt: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(this.maxBackoffMs);
    let failed = false;
    for (;;) {
      try {
        const result = await attempt();
        if (failed) {
          this.context.health.set(component, null);
          this.context.logger?.info(`${what} works again`);
        }
        return result;
      } catch (error) {
        if (!isRetriable(error) || this.abort.signal.aborted) throw error;
        if (!failed) this.context.logger?.warn({ err: error, retryInMs: backoff.nextMs }, `${what} failed; retrying`);
        failed = true;
        this.context.health.set(component, `${what} failed (${describeError(error)}); retrying`, { critical: false });
        await backoff.wait(this.abort.signal);
      }
    }
  }
}

/** Tells the bus that the group's messages are done with (or failed with `error`). */
function settle(group: readonly Queued[], error?: unknown): void {
  for (const q of group) q.message.settle?.(error);
}
