import { entityId } from '../features/entity-key.js';
import type { Prediction } from '../interfaces/prediction-sink.js';

/** One prediction in the live stream. */
export interface FeedEvent {
  /** Increases by one per prediction; a client resumes after it (SSE `Last-Event-ID`). */
  readonly id: number;
  readonly prediction: Prediction;
  /** The entity's identity ({@link entityId} of its key), for filtering. */
  readonly entity: string;
  /**
   * The event as a stream sends it, made by the first stream that sends it and kept for the others
   * (a field, not a side table: a weak map over every buffered event makes each garbage collection slower).
   */
  wire?: string;
}

/** Which predictions a subscriber hears: all, or those of one model and/or one entity. */
export interface FeedFilter {
  readonly model?: string;
  /** An entity identity, {@link entityId} of the key. */
  readonly entity?: string;
}

/** What {@link PredictionFeed.subscribe} takes. */
export interface FeedSubscriber {
  readonly filter?: FeedFilter;
  /** Replays the buffered events after this id first (a reconnecting client's last id). */
  readonly after?: number;
  /** Hears each event, in id order; must not throw. */
  onEvent(event: FeedEvent): void;
  /** Hears that the feed closed (the server is stopping). */
  onClose?(): void;
}

/** A subscription: what was replayed, and whether events the subscriber asked for are gone. */
export interface FeedSubscription {
  /** Buffered events after `after` that match the filter, in id order (already passed to nobody: send them first). */
  readonly replay: readonly FeedEvent[];
  /** True when events after `after` have left the buffer (or came from an earlier process): some are missed. */
  readonly missed: boolean;
  unsubscribe(): void;
}

/** Options of {@link PredictionFeed}. */
export interface FeedOptions {
  /** Predictions kept for replay. Default 10 000. */
  readonly capacity?: number;
  /**
   * The id before the first event. Default: the clock in µs, so ids keep increasing across restarts
   * (up to a million predictions a second) and a client's id from an earlier process reads as older.
   */
  readonly startId?: number;
}

function matches(filter: FeedFilter | undefined, event: FeedEvent): boolean {
  if (!filter) return true;
  return (
    (filter.model === undefined || filter.model === event.prediction.model) &&
    (filter.entity === undefined || filter.entity === event.entity)
  );
}

/**
 * The live stream of predictions: a bounded ring buffer of the most recent ones with increasing ids,
 * and subscribers that each hear the ones matching their filter. A reconnecting subscriber gives its
 * last id and first gets the buffered events after it.
 */
export class PredictionFeed {
  readonly capacity: number;
  private readonly buffer: (FeedEvent | undefined)[];
  /** Index in {@link buffer} of the oldest event. */
  private head = 0;
  private count = 0;
  private last: number;
  private readonly subscribers = new Set<FeedSubscriber>();
  private closed = false;

  constructor(options: FeedOptions = {}) {
    this.capacity = options.capacity ?? 10_000;
    if (!(Number.isInteger(this.capacity) && this.capacity >= 1))
      throw new TypeError(`the feed's capacity must be a positive integer, got ${options.capacity}`);
    this.buffer = new Array(this.capacity);
    this.last = options.startId ?? Date.now() * 1000;
  }

  /** The id of the newest event (the start id before any). */
  get lastId(): number {
    return this.last;
  }

  /** Events in the buffer. */
  get size(): number {
    return this.count;
  }

  /** Open subscriptions. */
  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Adds predictions, in order, and hands each to the subscribers whose filter it matches. */
  publish(predictions: readonly Prediction[]): void {
    if (this.closed) return;
    for (const prediction of predictions) {
      const event: FeedEvent = { id: ++this.last, prediction, entity: entityId(prediction.key) };
      this.buffer[(this.head + this.count) % this.capacity] = event;
      if (this.count === this.capacity) this.head = (this.head + 1) % this.capacity;
      else this.count++;
      for (const s of this.subscribers) if (matches(s.filter, event)) s.onEvent(event);
    }
  }

  /** Subscribes; the returned replay holds the buffered events after `subscriber.after`. */
  subscribe(subscriber: FeedSubscriber): FeedSubscription {
    const replay: FeedEvent[] = [];
    let missed = false;
    const after = subscriber.after;
    if (after !== undefined && after < this.last) {
      const oldest = this.last - this.count + 1;
      missed = after < oldest - 1;
      for (let id = Math.max(after + 1, oldest); id <= this.last; id++) {
        const event = this.buffer[(this.head + (id - oldest)) % this.capacity]!;
        if (matches(subscriber.filter, event)) replay.push(event);
      }
    }
    if (this.closed) {
      subscriber.onClose?.();
      return { replay, missed, unsubscribe: () => undefined };
    }
    this.subscribers.add(subscriber);
    return { replay, missed, unsubscribe: () => this.subscribers.delete(subscriber) };
  }

  /** Ends every subscription (each hears `onClose`); later publishes are ignored. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subscribers) s.onClose?.();
  }
}
