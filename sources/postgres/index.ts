import { ContainerModule } from 'inversify';
import type { SourceAdapter } from '../../framework/config.js';
import { TOKENS } from '../../framework/tokens.js';
import {
  POSTGRES_CONFIG,
  resolvePostgresConfig,
  type PostgresConfig,
  type ResolvedPostgresConfig,
} from './postgres-config.js';
import { PostgresSource } from './postgres-source.js';

export { POSTGRES_CONFIG, type PostgresConfig, type ResolvedPostgresConfig } from './postgres-config.js';
export { POSTGRES_ERRORS } from './postgres-errors.js';

/** The PostgreSQL source as the config holds it: its resolved settings and its container module. */
export interface PostgresAdapter extends SourceAdapter {
  readonly name: 'postgres';
  readonly config: ResolvedPostgresConfig;
}

/**
 * PostgreSQL as the change source, by logical replication (pgoutput): a consistent snapshot, then
 * every committed change.
 *
 * @example
 * export default defineConfig({ source: postgres({ tables: ['public.orders'] }) });
 */
export function postgres(config: PostgresConfig): PostgresAdapter {
  const resolved = resolvePostgresConfig(config);
  return Object.freeze({
    kind: 'source',
    name: 'postgres',
    config: resolved,
    tables: resolved.tables,
    module: new ContainerModule(({ bind }) => {
      bind(POSTGRES_CONFIG).toConstantValue(resolved);
      bind(TOKENS.Source)
        .to(PostgresSource)
        .inSingletonScope()
        .onDeactivation((source) => source.close());
    }),
    withTables: (tables: readonly string[]) => postgres({ ...resolved, tables }),
  });
}
