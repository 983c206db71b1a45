import type { Op, Position, Value } from '../types.js';
import type { StoredFeatureValue } from './feature-values.js';
import type { FeatureView } from './feature-view.js';

/**
 * One entity's feature values after one change, as a view version computed them from the change's
 * row (its transform and filter). Materialized once per change by the framework and read by every
 * store: the offline history, the online store, the change bus.
 */
export interface FeatureRow {
  /** The change's op (`r`, `c`, `u`, `d`; `t` for a truncate, which clears the view). */
  readonly op: Op;
  /** The entity key's values in the order of `entity.keys`; empty for a truncate. */
  readonly key: readonly Value[];
  /**
   * The features in the view's declaration order, in stored form; null when the change closed the
   * entity (a delete, a row the filter drops, the old key of a key change) or truncated the view.
   */
  readonly values: readonly StoredFeatureValue[] | null;
  /** Position of the change in the source's commit order. */
  readonly position: Position;
  /** Commit time of the change's transaction, µs since the Unix epoch (UTC). */
  readonly commitTime: bigint;
}

/** The feature rows one view version made of one batch of changes, in commit order. */
export interface FeatureRowBatch {
  readonly view: FeatureView;
  readonly rows: readonly FeatureRow[];
}
