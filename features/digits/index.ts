import type { FeatureDefinitions } from '../../framework/features';
import { digitClassifier } from './digit-classifier';
import { digits } from './digits-view';

export { image } from './image';
export { digits, defineDigitsView } from './digits-view';
export { digitClassifier } from './digit-classifier';
export { DIGITS_TABLE_SQL } from './digits-table';

/** The digits example's definitions, for `featureflow.config.ts`: `features: digitFeatures`. */
export const digitFeatures: FeatureDefinitions = { views: [digits], services: [digitClassifier] };
