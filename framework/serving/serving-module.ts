import { ContainerModule } from 'inversify';
import { TOKENS } from '../tokens.js';
import { InProcessBus } from './in-process-bus.js';

/**
 * What a serving process adds to the container: the bus the ingest publishes feature rows on (in
 * this process by default). Its presence makes the engine publish.
 */
export function servingModule(): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.ChangeBus)
      .toResolvedValue(() => new InProcessBus(), [])
      .inSingletonScope()
      .onDeactivation((bus) => bus.close());
  });
}
