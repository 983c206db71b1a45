/**
 * featureflow's public API and composition root: the adapters a config composes (PostgreSQL, DuckDB)
 * and the production container made of them.
 */
import type { Container } from 'inversify';
import { runCli } from './framework/cli/main.js';
import { resolveConfig, type ConfigDefaults, type FeatureflowConfig, type ResolvedConfig } from './framework/config.js';
import { buildContainer } from './framework/container.js';
import { servingModule } from './framework/serving/serving-module.js';
import { postgres } from './sources/postgres/index.js';
import { duckdb } from './stores/duckdb/index.js';
import { memory } from './stores/memory/index.js';

export { defineConfig } from './framework/config.js';
export type {
  Adapter,
  BusAdapter,
  FeatureflowConfig,
  IngestConfig,
  OnlineAdapter,
  PredictionsAdapter,
  PublishAdapter,
  ResolvedConfig,
  ScorerAdapter,
  ServeConfig,
  SourceAdapter,
  StoreAdapter,
  StoreInspection,
} from './framework/config.js';
export { closeContainer } from './framework/container.js';
export { ServeRuntime } from './framework/serving/serve-runtime.js';
export { FeatureflowError, ErrorCodes } from './framework/errors.js';
export { TOKENS } from './framework/tokens.js';
export * from './framework/types.js';
export type * from './framework/interfaces/index.js';
export * from './framework/features/index.js';
export type { BatchInfo, IngestOptions, IngestResult } from './framework/ingest/ingest-engine.js';
export { msBehind } from './framework/ingest/batch-info.js';
export { postgres, POSTGRES_ERRORS, type PostgresAdapter, type PostgresConfig } from './sources/postgres/index.js';
export {
  debeziumTopics,
  DEBEZIUM_TOPICS_ERRORS,
  type DebeziumTopicsAdapter,
  type DebeziumTopicsConfig,
} from './sources/kafka/index.js';
export {
  duckdb,
  DUCKDB_ERRORS,
  DuckDBOfflineStore,
  openOfflineStore,
  type DuckDBAdapter,
  type DuckDBConfig,
} from './stores/duckdb/index.js';
export { memory, type MemoryConfig, type MemoryOnline } from './stores/memory/index.js';
export { redis, REDIS_ERRORS, type RedisConfig, type RedisOnline } from './stores/redis/index.js';
export {
  postgresPredictions,
  POSTGRES_PREDICTIONS_ERRORS,
  type PostgresPredictions,
  type PostgresPredictionsConfig,
} from './stores/postgres/index.js';
export { debezium, type DebeziumConfig, type DebeziumPublish } from './stores/debezium/index.js';
export {
  kafkaBus,
  KAFKA_BUS_ERRORS,
  type KafkaBusAdapter,
  type KafkaBusConfig,
} from './stores/kafka/index.js';
export { saveModel, tfjs, TFJS_ERRORS, type TfjsModel, type TfjsScorerConfig } from './scorers/tfjs/index.js';
// toTensors lives in 'featureflow/tensors': it loads TF.js, which is slow, so it is imported on demand
// (the scorer loads TF.js in its worker threads only).

/** The adapters used where a config names none. */
export const DEFAULTS: ConfigDefaults = { store: () => duckdb(), online: () => memory() };

/** Validates a config written with {@link defineConfig} and fills its defaults (the DuckDB store). */
export function resolve(config: FeatureflowConfig): ResolvedConfig {
  return resolveConfig(config, DEFAULTS);
}

/**
 * Builds the production container from a config (validated and frozen here): every configured
 * adapter's module; the configured bus (Kafka: the ingest publishes on it too), else, with
 * `serving`, the in-process bus the ingest publishes feature rows on.
 */
export async function createContainer(
  config: FeatureflowConfig | ResolvedConfig,
  options: { readonly serving?: boolean } = {},
): Promise<Container> {
  const resolved = Object.isFrozen(config) ? (config as ResolvedConfig) : resolve(config as FeatureflowConfig);
  const modules = [
    resolved.source.module,
    resolved.store.module,
    resolved.online.module,
    ...(resolved.model ? [resolved.model.module] : []),
    ...resolved.predictions.map((p) => p.module),
    ...(resolved.publish ? [resolved.publish.module] : []),
    ...(resolved.bus ? [resolved.bus.module] : options.serving ? [servingModule()] : []),
  ];
  return buildContainer(resolved, modules);
}

/** Runs the `featureflow` command line with the production container; resolves to the exit code. */
export function cli(argv: string[]): Promise<number> {
  return runCli(argv, { createContainer, defaults: DEFAULTS, sourceFor: (tables) => postgres({ tables }) });
}
