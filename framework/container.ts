import { Container, ContainerModule } from 'inversify';
import type { ResolvedConfig } from './config.js';
import { FeatureRegistry } from './features/feature-registry.js';
import { Materializer } from './features/materialize.js';
import { IngestEngine } from './ingest/ingest-engine.js';
import { createLogger } from './logger.js';
import { TOKENS } from './tokens.js';

/** Binds what every featureflow process has: the frozen config, the root logger, the feature definitions, the ingestion engine. */
export function coreModule(config: ResolvedConfig): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.Config).toConstantValue(config);
    bind(TOKENS.Logger).toConstantValue(createLogger(config.logLevel));
    bind(TOKENS.FeatureRegistry).toConstantValue(new FeatureRegistry(config.features));
    bind(TOKENS.Materializer)
      .toResolvedValue((registry) => new Materializer(registry), [TOKENS.FeatureRegistry])
      .inSingletonScope();
    bind(TOKENS.IngestEngine).to(IngestEngine).inSingletonScope();
  });
}

/**
 * Builds a container from the core module and the given source/store modules (each adapter folder
 * exports one). Close it with {@link closeContainer}: singletons with deactivation hooks close then.
 */
export async function buildContainer(config: ResolvedConfig, modules: readonly ContainerModule[]): Promise<Container> {
  const container = new Container({ defaultScope: 'Singleton' });
  await container.load(coreModule(config), ...modules);
  return container;
}

/** Unbinds everything, running each singleton's deactivation (closing connections and files). */
export async function closeContainer(container: Container): Promise<void> {
  await container.unbindAllAsync();
}
