import { ContainerModule } from 'inversify';
import { TOKENS } from '../../framework/tokens';
import { PostgresSource } from './postgres-source';

export { PostgresSource } from './postgres-source';

/** Registers PostgreSQL as the change source. */
export function postgresSourceModule(): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.Source)
      .to(PostgresSource)
      .inSingletonScope()
      .onDeactivation((source) => source.close());
  });
}
