import type { Position, Value } from '../types.js';

/** How long each stage of one prediction took, in ms. */
export interface PredictionLatency {
  /** Commit in the source → the change received by featureflow (clocks of two machines: approximate). */
  readonly receivedMs: number;
  /** Received → its features written to the online store. */
  readonly featuresMs: number;
  /** Features written → the model's output. */
  readonly scoredMs: number;
}

/** The model's answer for one committed change of an entity of the scored service. */
export interface Prediction {
  readonly model: string;
  readonly modelVersion: string;
  /** The entity key's values, in the entity's key order. */
  readonly key: readonly Value[];
  /** The model's output, flat. */
  readonly output: readonly number[];
  /** Index of the largest output, where the model is a classifier. */
  readonly argmax?: number;
  /** The class label at `argmax`, where the model has labels. */
  readonly label?: string;
  /** Position of the change whose features were used (the prediction's identity with the key). */
  readonly position: Position;
  /** Commit time of that change, µs since the Unix epoch. */
  readonly commitTime: bigint;
  /** When the prediction was made, ms since the Unix epoch. */
  readonly predictedAt: number;
  readonly latency: PredictionLatency;
}

/**
 * Where predictions go (a DuckDB table, a PostgreSQL table, the live stream). A sink applies each
 * prediction once: keyed by (model, entity, position), so a replay after a crash changes nothing.
 */
export interface PredictionSink {
  /**
   * Set by a sink kept in the offline store itself, which only the process holding the store can
   * write: a serving process that consumes a bus between processes writes only the shared sinks.
   */
  readonly inStore?: boolean;
  /** Creates what the sink needs; first call. */
  open(): Promise<void>;
  /**
   * Writes predictions, in position order, and records that every prediction of changes up to
   * `through` (when given) is written; after {@link open}.
   */
  write(predictions: readonly Prediction[], through: Position | null): Promise<void>;
  /** The position through which every prediction is written, or null; after {@link open}. */
  watermark(): Promise<Position | null>;
  /** Closes; idempotent. */
  close(): Promise<void>;
}
