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
  /**
   * Position of the change itself: with {@link commitPosition}, the row's identity (a prediction's
   * too). Changes of concurrent transactions interleave in change positions: order rows by
   * {@link compareRows}, never by this alone.
   */
  readonly position: Position;
  /** Position of the commit of the change's transaction: rows are in commit order, then change order. */
  readonly commitPosition: Position;
  /** Commit time of the change's transaction, µs since the Unix epoch (UTC). */
  readonly commitTime: bigint;
}

/** The feature rows one view version made of one batch of changes, in commit order. */
export interface FeatureRowBatch {
  readonly view: FeatureView;
  readonly rows: readonly FeatureRow[];
}

/**
 * The order of feature rows: commit order, then the order of changes within a transaction. (Change
 * positions alone are not commit order: a transaction that began earlier may commit later.) Online
 * writes are guarded by it; per entity, a row applies when it comes later in this order.
 */
export function compareRows(
  a: Pick<FeatureRow, 'commitPosition' | 'position'>,
  b: Pick<FeatureRow, 'commitPosition' | 'position'>,
): number {
  if (a.commitPosition !== b.commitPosition) return a.commitPosition < b.commitPosition ? -1 : 1;
  return a.position < b.position ? -1 : a.position > b.position ? 1 : 0;
}
