import { featureService } from '../../framework/features/index.js';
import { digits } from './digits-view.js';

/** What the digit classifier trains on: the pixels (the label comes from the spine or `digits:label`). */
export const digitClassifier = featureService({ name: 'digit_classifier', features: [digits.select('pixels')] });
