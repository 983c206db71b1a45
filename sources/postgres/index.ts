import { ContainerModule } from 'inversify';
import { TOKENS } from '../../framework/tokens.js';
import { PostgresSource } from './postgres-source.js';

export { PostgresSource } from './postgres-source.js';

/** Registers PostgreSQL as the change source. */
export function postgresSourceModule(): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.Source)
      .to(PostgresSource)
      .inSingletonScope()
      .onDeactivation((source) => source.close());
  });
}
