/**
 * TF.js and worker-thread failures as coded errors. A crashed worker or a model failing on a batch is
 * retriable (`FF_SCORER_FAILED`: score the examples again); a model that cannot load is not.
 */
import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The TF.js scorer's codes. */
export const TFJS_ERRORS = defineErrors({
  FF_MODEL_LOAD: { retriable: false, summary: 'a model cannot be loaded from its files' },
  FF_MODEL_INPUT: { retriable: false, summary: "a feature service's features do not fit the model's inputs" },
  FF_SCORER_FAILED: { retriable: true, summary: 'a scoring worker crashed or its model failed while scoring' },
  FF_SCORER_CLOSED: { retriable: false, summary: 'the scorer is not open' },
});

/** The model's files or runtime cannot be loaded (`FF_MODEL_LOAD`). */
export function modelLoadError(message: string, cause?: unknown): FeatureflowError {
  return new FeatureflowError('FF_MODEL_LOAD', message, cause === undefined ? undefined : { cause });
}

/** A worker thread died, holding examples (`FF_SCORER_FAILED`). */
export function workerDiedError(cause: Error): FeatureflowError {
  return new FeatureflowError(
    'FF_SCORER_FAILED',
    `a scoring worker died (${cause.message}); the examples it held were not scored: score them again`,
    { cause },
  );
}

/** TF.js threw while running the model on a batch (`FF_SCORER_FAILED`). */
export function batchFailedError(message: string): FeatureflowError {
  return new FeatureflowError(
    'FF_SCORER_FAILED',
    `the model failed on a batch of examples (${message}); score them again, and if it repeats check the model on these inputs`,
  );
}

/** Scoring asked of a scorer that is not open (`FF_SCORER_CLOSED`). */
export function scorerClosedError(model: string, what: string): FeatureflowError {
  return new FeatureflowError('FF_SCORER_CLOSED', `the TF.js scorer of model ${model} ${what}`);
}
