/** The TF.js scorer: `model: tfjs({ path, service })` in `featureflow.config.ts`. */
import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import type { ScorerAdapter } from '../../framework/config.js';
import type { Scorer } from '../../framework/interfaces/scorer.js';
import { TOKENS } from '../../framework/tokens.js';
import { resolveTfjsScorerConfig, type ResolvedTfjsScorerConfig, type TfjsScorerConfig } from './tfjs-config.js';
import { TfjsScorer } from './tfjs-scorer.js';

export { TfjsScorer, type TfjsScorerStats } from './tfjs-scorer.js';
export { saveModel, type ModelManifest, type SaveableModel } from './model-files.js';
export type { ResolvedTfjsScorerConfig, TfjsBackend, TfjsScorerConfig } from './tfjs-config.js';
export { TFJS_ERRORS } from './tfjs-errors.js';

/** A configured TF.js model: what the container turns into the running {@link Scorer}. */
export interface TfjsModel extends ScorerAdapter {
  readonly name: 'tfjs';
  /** The validated configuration, defaults filled in. */
  readonly config: ResolvedTfjsScorerConfig;
  /** A new scorer for this model (not open yet). */
  create(logger?: Logger): Scorer;
}

/**
 * A TF.js model scoring a feature service; validates the configuration now (`FF_CONFIG_INVALID`) and
 * loads the model when the scorer opens.
 *
 * @example
 * export default defineConfig({
 *   // …
 *   model: tfjs({ path: 'models/digits', service: digitClassifier, workers: 2 }),
 * });
 */
export function tfjs(config: TfjsScorerConfig): TfjsModel {
  const resolved = resolveTfjsScorerConfig(config);
  const create = (logger?: Logger): Scorer => new TfjsScorer(resolved, logger);
  return Object.freeze({
    kind: 'scorer' as const,
    name: 'tfjs' as const,
    config: resolved,
    service: resolved.service,
    create,
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.Scorer)
        .toResolvedValue((logger) => create(logger), [TOKENS.Logger])
        .inSingletonScope()
        .onDeactivation((scorer) => scorer.close());
    }),
  });
}
