import { dirname, join } from 'node:path';
import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import type { StoreAdapter, StoreInspection } from '../../framework/config.js';
import type { FeatureDefinitions } from '../../framework/features/feature-registry.js';
import type { ChangeLog } from '../../framework/interfaces/index.js';
import { TOKENS } from '../../framework/tokens.js';
import { DUCKDB_CONFIG, resolveDuckDBConfig, type DuckDBConfig, type ResolvedDuckDBConfig } from './duckdb-config.js';
import { DuckDBChangeLog } from './duckdb-change-log.js';
import { openOfflineStore, READER_MEMORY_LIMIT } from './offline/duckdb-offline-store.js';
import { featureStatus } from './offline/feature-catalog.js';
import { HistoryTables } from './offline/history-tables.js';
import { IngestingOfflineStore } from './offline/ingesting-offline-store.js';
import { serveReads } from './offline/read-service.js';
import { DuckDBPredictionSink } from './predictions/duckdb-prediction-sink.js';

export { DUCKDB_CONFIG, type DuckDBConfig, type ResolvedDuckDBConfig } from './duckdb-config.js';
export { DUCKDB_ERRORS } from './duckdb-errors.js';
export {
  DuckDBOfflineStore,
  openOfflineStore,
  READER_MEMORY_LIMIT,
  type OpenOfflineStoreOptions,
} from './offline/duckdb-offline-store.js';
export { RemoteOfflineStore } from './offline/remote-offline-store.js';
export { POINT_IN_TIME_RULE } from './offline/feature-query.js';

/** The DuckDB store as the config holds it: its resolved settings and its container module. */
export interface DuckDBAdapter extends StoreAdapter {
  readonly name: 'duckdb';
  readonly config: ResolvedDuckDBConfig;
}

/** Reads the change log's progress, its counts and the feature views' status, opening the file read-only. */
async function inspect(path: string, memoryLimit: string): Promise<StoreInspection> {
  const log = new DuckDBChangeLog(path, { readOnly: true, memoryLimit });
  await log.open();
  try {
    return { state: await log.state(), tables: await log.stats(), views: await featureStatus(log.connection) };
  } finally {
    await log.close();
  }
}

/**
 * DuckDB as the offline store: the change log and the feature views' history in one file, each batch
 * and its feature rows committed together; reads and exports (Parquet, Arrow) of the history.
 *
 * @example
 * export default defineConfig({ source: postgres({ tables: ['public.orders'] }), store: duckdb({ path: 'shop.duckdb' }) });
 */
export function duckdb(config: DuckDBConfig = {}): DuckDBAdapter {
  const resolved = resolveDuckDBConfig(config);
  const { path } = resolved;
  // Readers (exports, training sets) get more than the ingest's default 64 MB, unless told otherwise.
  const readerMemory = config.memoryLimit ?? READER_MEMORY_LIMIT;
  return Object.freeze({
    kind: 'store',
    name: 'duckdb',
    config: resolved,
    location: path,
    progressFile: join(dirname(path), 'ingest-status.json'),
    module: new ContainerModule(({ bind }) => {
      bind(DUCKDB_CONFIG).toConstantValue(resolved);
      bind(TOKENS.ChangeLog)
        .toResolvedValue(
          (materializer, logger) =>
            new DuckDBChangeLog(
              path,
              {
                memoryLimit: resolved.memoryLimit,
                compression: resolved.compression,
                openTimeoutSeconds: resolved.openTimeoutSeconds,
              },
              new HistoryTables(materializer, (logger as Logger).child({ component: 'feature-history' })),
            ),
          [TOKENS.Materializer, TOKENS.Logger],
        )
        .inSingletonScope()
        .onDeactivation((log) => log.close());
      // Each read on a connection and in a transaction of its own, once the log is open (the ingest's process).
      bind(TOKENS.OfflineStore)
        .toResolvedValue(
          (log, registry) => new IngestingOfflineStore(() => (log as DuckDBChangeLog).openConnection(), registry),
          [TOKENS.ChangeLog, TOKENS.FeatureRegistry],
        )
        .inSingletonScope();
      // Predictions beside the log, on a connection of their own (resolved by a serving process with a model).
      bind(TOKENS.PredictionSink)
        .toResolvedValue(
          (log, scorer) =>
            new DuckDBPredictionSink(() => (log as DuckDBChangeLog).openConnection(), { model: scorer.model.name }),
          [TOKENS.ChangeLog, TOKENS.Scorer],
        )
        .inSingletonScope();
    }),
    inspect: () => inspect(path, readerMemory),
    openReader: (definitions: FeatureDefinitions) => openOfflineStore(path, { definitions, memoryLimit: readerMemory }),
    // Other processes read through this one while it holds the file (DuckDB lets none open it meanwhile);
    // its instance gets at least a reader's memory while they do.
    shareReads: (log: ChangeLog) => serveReads(log as DuckDBChangeLog, { path, memoryLimit: readerMemory }),
  });
}
