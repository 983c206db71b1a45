import type { StoredFeatureValue } from '../features/feature-values.js';
import type { FeatureService } from '../features/feature-service.js';

/** One example to score: the service's features in its order (selections in order, features in selection order). */
export type ScoringInput = readonly StoredFeatureValue[];

/** A model's answer for one example. */
export interface ScoringOutput {
  /** The model's output, flat (row-major). */
  readonly output: Float32Array;
  /** Index of the largest output, where the model is a classifier (one output vector). */
  readonly argmax?: number;
  /** The class label at `argmax`, where the model has labels. */
  readonly label?: string;
}

/** Identity of a loaded model, as predictions record it. */
export interface ModelInfo {
  readonly name: string;
  readonly version: string;
  /** The feature service whose features the model takes. */
  readonly service: FeatureService;
}

/**
 * Runs a model on the features of a feature service. Scoring runs off the caller's event loop and
 * batches examples that arrive together.
 */
export interface Scorer {
  readonly model: ModelInfo;
  /**
   * Loads the model and checks its inputs against the service's features (shape and dtype); a
   * mismatch fails with an error naming the feature and both shapes. First call.
   */
  open(): Promise<void>;
  /** Scores examples; resolves with one output per example, in order. After {@link open}. */
  score(examples: readonly ScoringInput[]): Promise<ScoringOutput[]>;
  /** Examples waiting to be scored (for metrics). Any time. */
  readonly queued: number;
  /** Stops the workers; idempotent. */
  close(): Promise<void>;
}
