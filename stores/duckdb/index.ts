import { ContainerModule } from 'inversify';
import { TOKENS } from '../../framework/tokens';
import { DuckDBChangeLog } from './duckdb-change-log';

export { DuckDBChangeLog } from './duckdb-change-log';
export { openDuckDB } from './duckdb-database';
export * from './features';

/** Registers the DuckDB file as the durable change log. */
export function duckdbStoreModule(): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.ChangeLog)
      .toResolvedValue((config) => new DuckDBChangeLog(config.store.path, { memoryLimit: config.store.memoryLimit, compression: config.store.compression }), [TOKENS.Config])
      .inSingletonScope()
      .onDeactivation((log) => log.close());
  });
}
export { inspectStore, type StoreReport } from './inspect-store';
