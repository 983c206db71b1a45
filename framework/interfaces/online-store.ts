import type { FeatureRowBatch } from '../features/feature-rows.js';
import type { StoredFeatureValue } from '../features/feature-values.js';
import type { FeatureView } from '../features/feature-view.js';
import type { Position, Value } from '../types.js';

/** What an online read found for one entity. */
export type OnlineValueStatus =
  /** The entity has values, newer than the view's ttl. */
  | 'ok'
  /** The store holds nothing for the entity (never seen, deleted, or the view was truncated). */
  | 'missing'
  /** The entity's values are older than the view's ttl at the time of the read: absent. */
  | 'expired';

/** One entity's online values. */
export interface OnlineValue {
  readonly status: OnlineValueStatus;
  /** The features in the view's declaration order; null unless `status` is `ok`. */
  readonly values: readonly StoredFeatureValue[] | null;
  /** Position of the change the values (or the deletion) came from; null when nothing is known of the entity. */
  readonly position: Position | null;
  /** Commit time of that change, µs since the Unix epoch; null when nothing is known. */
  readonly commitTime: bigint | null;
}

/** One part of a view's stream (a partition of its Kafka topic), of `count` parts (0 ≤ index < count). */
export interface WatermarkPart {
  readonly index: number;
  readonly count: number;
}

/**
 * The latest feature values per entity of each served view version, for low-latency reads. Writes
 * are position-guarded and idempotent: a row is applied only when it is newer than what the store
 * holds for its entity (and than the view's last truncate), so replaying rows after a crash changes
 * nothing. A delete removes the entity; a truncate clears the view.
 */
export interface OnlineStore {
  /** Connects, and finds out whether the store still holds what was written (see {@link needsLoad}); first call. */
  open(): Promise<void>;
  /**
   * True when the store holds nothing for `view` that a load or earlier writes put there (new, or a
   * shared store that restarted empty): the caller then loads the offline store's latest rows
   * ({@link write}, then {@link setWatermark}). After {@link open}, any time.
   */
  needsLoad(view: FeatureView): Promise<boolean>;
  /** Applies feature rows (each batch in its order); resolves once they are visible to reads. After {@link open}. */
  write(batches: readonly FeatureRowBatch[]): Promise<void>;
  /**
   * Records that `view` reflects every change up to `position` (after the rows up to it were
   * written). Resolves false, recording nothing, when the store no longer holds what it was loaded
   * with (a shared store that restarted empty): load it again ({@link needsLoad}). With `part`, the
   * position covers that part of the view's stream only (a Kafka partition, consumed by one of several
   * processes): the view is then current through the lowest position of its parts, once each has one.
   * After {@link open}.
   */
  setWatermark(view: FeatureView, position: Position, part?: WatermarkPart): Promise<boolean>;
  /** The position through which `view` is current, or null before anything was loaded or written. After {@link open}. */
  watermark(view: FeatureView): Promise<Position | null>;
  /** The values of the entities with these keys (each in the order of `entity.keys`), in one round trip, in the order asked; ttl applied at `now` (µs, default the clock). After {@link open}. */
  read(view: FeatureView, keys: readonly (readonly Value[])[], now?: bigint): Promise<OnlineValue[]>;
  /** Entities with values of `view` (for metrics). After {@link open}. */
  count(view: FeatureView): Promise<number>;
  /** Closes connections; idempotent. */
  close(): Promise<void>;
}
