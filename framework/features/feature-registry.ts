import { FeatureflowError } from '../errors.js';
import type { FeatureService } from './feature-service.js';
import type { FeatureView } from './feature-view.js';

/** The feature definitions of a project, as `featureflow.config.ts` lists them (`features: { views, services }`). */
export interface FeatureDefinitions {
  /** Views whose history tables ingest keeps current. List two versions of a view to keep both current. */
  readonly views?: readonly FeatureView[];
  /** Feature services; their views are kept current too. */
  readonly services?: readonly FeatureService[];
}

/**
 * The definitions of a project, checked once: view versions are unique, and services only name
 * known features. Views of services are included.
 */
export class FeatureRegistry {
  readonly views: readonly FeatureView[];
  readonly services: readonly FeatureService[];

  constructor(definitions: FeatureDefinitions = {}) {
    const views = new Map<string, FeatureView>();
    const add = (view: FeatureView) => {
      const id = `${view.name}@${view.version}`;
      const known = views.get(id);
      if (known && known !== view) {
        throw new FeatureflowError(
          'FF_FEATURE_DEFINITION',
          `feature view ${view.name} v${view.version} is defined twice with different objects; give each definition its own version`,
        );
      }
      views.set(id, view);
    };
    for (const view of definitions.views ?? []) add(view);
    const services = new Map<string, FeatureService>();
    for (const service of definitions.services ?? []) {
      if (services.has(service.name))
        throw new FeatureflowError(
          'FF_FEATURE_DEFINITION',
          `feature service ${service.name} is defined twice; rename one`,
        );
      services.set(service.name, service);
      for (const s of service.selections) add(s.view);
    }
    for (const name of services.keys()) {
      if ([...views.values()].some((v) => v.name === name)) {
        throw new FeatureflowError(
          'FF_FEATURE_DEFINITION',
          `feature service ${name} has the name of a feature view; rename one so exports can tell them apart`,
        );
      }
    }
    this.views = Object.freeze([...views.values()]);
    this.services = Object.freeze([...services.values()]);
  }

  /** The view `name` at `version`, or its highest defined version. */
  view(name: string, version?: number): FeatureView | undefined {
    const matching = this.views.filter((v) => v.name === name && (version === undefined || v.version === version));
    return matching.sort((a, b) => b.version - a.version)[0];
  }

  service(name: string): FeatureService | undefined {
    return this.services.find((s) => s.name === name);
  }

  /** Views reading `table` (qualified). */
  viewsOf(table: string): FeatureView[] {
    return this.views.filter((v) => v.source === table);
  }
}

/** Identity function that types a project's feature definitions (and checks them early). */
export function defineFeatures(definitions: FeatureDefinitions): FeatureDefinitions {
  new FeatureRegistry(definitions);
  return definitions;
}
