import type { FeatureRowBatch } from '../features/feature-rows.js';
import type { FeatureView } from '../features/feature-view.js';
import type { Position } from '../types.js';

/**
 * The feature rows of one batch of changes, as the bus carries them: per view version, in commit
 * order, and the position through which the batch is complete (when it is).
 */
export interface FeatureRowsMessage {
  readonly batches: readonly FeatureRowBatch[];
  /** Set when the batch ended on a transaction boundary: every change up to this position is in. */
  readonly through: Position | null;
  /**
   * Set by a bus that carries each view's stream in parts, each consumed by one of several processes
   * (Kafka partitions): the message holds part `index` of `view`'s stream, and `through` covers that
   * part only. The view is served through the lowest position of its parts.
   */
  readonly part?: { readonly view: FeatureView; readonly index: number; readonly count: number };
  /** When the source received the batch's last change (ms since the Unix epoch), for latency figures. */
  readonly receivedAt: number;
  /**
   * Set by a bus that must know when the message's work is done (a Kafka bus commits its offsets
   * then): called once its rows are in the online store and its predictions in every sink, or with
   * the error that stopped them. The serving side calls it once; a message nobody settles never is.
   */
  readonly settle?: (error?: unknown) => void;
}

/** Hears the bus's messages, in order; returns when it has taken the message in (it may work on it later). */
export type FeatureRowsListener = (message: FeatureRowsMessage) => Promise<void> | void;

/**
 * Carries feature rows from the ingest to the online side: in-process by default, Kafka (keyed by
 * entity) to scale out. Per entity, order is kept.
 */
export interface ChangeBus {
  /**
   * Set by a bus between processes (Kafka): the engine then publishes what the change log committed,
   * after the commit, and again whatever a crash left unpublished (at least once), keeping the
   * position it published through in the change log under this id. Unset (in-process): the engine
   * publishes each batch as it is materialized.
   */
  readonly publisherId?: string;
  /** Hands a batch's feature rows to the bus; after the ingest materialized them. */
  publish(message: FeatureRowsMessage): Promise<void>;
  /** Registers a listener for every message published from now on; before the first publish. */
  subscribe(listener: FeatureRowsListener): void;
  /**
   * Starts delivering what other processes publish (a bus between processes), after the listeners
   * subscribed and the online store is loaded; resolves once delivering. Absent on an in-process bus.
   */
  listen?(): Promise<void>;
  /** Stops delivering; idempotent. */
  close(): Promise<void>;
}
