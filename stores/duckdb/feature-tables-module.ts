import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import type { FeatureDefinitions } from '../../framework/features/feature-registry.js';
import { TOKENS } from '../../framework/tokens.js';
import { DuckDBChangeLog } from './duckdb-change-log.js';
import { FeatureTables, type FeatureTablesOptions } from './feature-tables.js';

/**
 * Adds the history tables of `definitions` to a DuckDB change log as a consumer (applied in each
 * batch's transaction); before the log applies its first batch. Returns the consumer.
 */
export function registerFeatureTables(changeLog: DuckDBChangeLog, definitions: FeatureDefinitions, options: FeatureTablesOptions = {}): FeatureTables {
  const tables = new FeatureTables(definitions, options);
  changeLog.addConsumer(tables);
  return tables;
}

/** Wires `config.features` into the DuckDB change log when the container creates it (nothing without features). */
export function featureTablesModule(): ContainerModule {
  return new ContainerModule(({ onActivation }) => {
    onActivation(TOKENS.ChangeLog, (context, log) => {
      const config = context.get(TOKENS.Config);
      const { views = [], services = [] } = config.features;
      if (log instanceof DuckDBChangeLog && views.length + services.length > 0) {
        const logger = context.get<Logger>(TOKENS.Logger).child({ component: 'feature-tables' });
        registerFeatureTables(log, config.features, { capturedTables: config.source.tables, logger });
      }
      return log;
    });
  });
}
