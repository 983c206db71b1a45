import { ContainerModule } from 'inversify';
import type { SourceAdapter } from '../../framework/config.js';
import { TOKENS } from '../../framework/tokens.js';
import {
  DEBEZIUM_TOPICS_CONFIG,
  type DebeziumTopicsConfig,
  type ResolvedDebeziumTopicsConfig,
  resolveDebeziumTopicsConfig,
} from './debezium-topics-config.js';
import { DebeziumTopicsSource } from './debezium-topics-source.js';

export type { DebeziumTopicsConfig, ResolvedDebeziumTopicsConfig } from './debezium-topics-config.js';
export { DEBEZIUM_TOPICS_ERRORS } from './debezium-topics-errors.js';

/** The Debezium-topics source as the config holds it: its resolved settings and its container module. */
export interface DebeziumTopicsAdapter extends SourceAdapter {
  readonly name: 'debezium-topics';
  readonly config: ResolvedDebeziumTopicsConfig;
}

/**
 * The change topics an existing Debezium PostgreSQL connector fills, as the change source: its
 * snapshot reads and every change after them, exactly once into the change log (the Kafka offsets
 * are stored with the checkpoint).
 *
 * @example
 * export default defineConfig({
 *   source: debeziumTopics({ brokers: ['127.0.0.1:9092'], topicPrefix: 'dbserver1', tables: ['public.orders'] }),
 * });
 */
export function debeziumTopics(config: DebeziumTopicsConfig): DebeziumTopicsAdapter {
  const resolved = resolveDebeziumTopicsConfig(config);
  return Object.freeze({
    kind: 'source',
    name: 'debezium-topics',
    config: resolved,
    tables: resolved.tables,
    module: new ContainerModule(({ bind }) => {
      bind(DEBEZIUM_TOPICS_CONFIG).toConstantValue(resolved);
      bind(TOKENS.Source)
        .to(DebeziumTopicsSource)
        .inSingletonScope()
        .onDeactivation((source) => source.close());
    }),
    withTables: (tables: readonly string[]) => debeziumTopics({ ...config, tables }),
  });
}
