import { ContainerModule } from 'inversify';
import { TOKENS } from '../../framework/tokens.js';
import { DuckDBChangeLog } from './duckdb-change-log.js';

export { DuckDBChangeLog } from './duckdb-change-log.js';
export { openDuckDB } from './duckdb-database.js';
export * from './features.js';

/** Registers the DuckDB file as the durable change log. */
export function duckdbStoreModule(): ContainerModule {
  return new ContainerModule(({ bind }) => {
    bind(TOKENS.ChangeLog)
      .toResolvedValue((config) => new DuckDBChangeLog(config.store.path, { memoryLimit: config.store.memoryLimit, compression: config.store.compression, openTimeoutSeconds: config.store.openTimeoutSeconds }), [TOKENS.Config])
      .inSingletonScope()
      .onDeactivation((log) => log.close());
  });
}
export { inspectStore, type StoreReport } from './inspect-store.js';
