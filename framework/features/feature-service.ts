import { FeatureflowError } from '../errors.js';
import type { FeatureSelection, FeatureView } from './feature-view.js';

/** The features one model consumes, from one or more views. */
export interface FeatureService {
  readonly kind: 'featureService';
  readonly name: string;
  readonly selections: readonly FeatureSelection[];
  readonly description?: string;
}

/**
 * Groups features of several views for a model; `featureflow export <service> --spine …` joins them all.
 *
 * @example
 * export const digitClassifier = featureService({ name: 'digit_classifier', features: [digits.select('pixels')] });
 */
export function featureService(definition: {
  name: string;
  features: readonly (FeatureView | FeatureSelection)[];
  description?: string;
}): FeatureService {
  const { name } = definition;
  if (!/^[a-z][a-z0-9_]*$/.test(name ?? '')) {
    throw new FeatureflowError(
      'FF_FEATURE_DEFINITION',
      `feature service ${JSON.stringify(name)} needs a lower-case identifier as its name`,
    );
  }
  if (!Array.isArray(definition.features) || definition.features.length === 0) {
    throw new FeatureflowError(
      'FF_FEATURE_DEFINITION',
      `feature service ${name} must list at least one view or view.select(…)`,
    );
  }
  const selections = definition.features.map(
    (f): FeatureSelection =>
      'kind' in f && f.kind === 'featureView'
        ? { view: f, features: Object.keys(f.features) }
        : (f as FeatureSelection),
  );
  const seen = new Set<string>();
  for (const s of selections) {
    const id = `${s.view.name}@${s.view.version}`;
    if (seen.has(id))
      throw new FeatureflowError(
        'FF_FEATURE_DEFINITION',
        `feature service ${name} lists view ${s.view.name} v${s.view.version} twice; merge the selections`,
      );
    seen.add(id);
  }
  return Object.freeze({
    kind: 'featureService',
    name,
    selections: Object.freeze(selections),
    ...(definition.description ? { description: definition.description } : {}),
  });
}
