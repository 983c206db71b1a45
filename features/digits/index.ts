import type { FeatureDefinitions } from '../../framework/features/index.js';
import { digitClassifier } from './digit-classifier.js';
import { digits } from './digits-view.js';

export { image } from './image.js';
export { digits, defineDigitsView } from './digits-view.js';
export { digitClassifier } from './digit-classifier.js';
export { DIGITS_TABLE_SQL } from './digits-table.js';

/** The digits example's definitions, for `featureflow.config.ts`: `features: digitFeatures`. */
export const digitFeatures: FeatureDefinitions = { views: [digits], services: [digitClassifier] };
