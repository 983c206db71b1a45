import { FeatureflowError } from '../../framework/errors.js';
import {
  type KafkaClientConfig,
  type ResolvedKafkaClientConfig,
  resolveKafkaClientConfig,
} from '../../clients/kafka/index.js';

/** Settings of the Debezium-envelope publisher: where the records go and how they are written. */
export interface DebeziumConfig extends KafkaClientConfig {
  /**
   * Debezium's `topic.prefix`: change records go to `<prefix>.<schema>.<table>`, transaction
   * metadata to `<prefix>.transaction`; also `source.name`. Letters, digits, `.`, `_`, `-`.
   * Default `featureflow`.
   */
  topicPrefix?: string;
  /** JsonConverter's `schemas.enable`: keys and values as `{schema, payload}`. Default true. */
  schemas?: boolean;
  /** A tombstone (null value) after each delete, for log compaction (`tombstones.on.delete`). Default true. */
  tombstones?: boolean;
  /** `source.db`, the captured database's name. Default `PGDATABASE`, else `postgres`. */
  database?: string;
}

/** The settings with their defaults filled in; frozen. */
export interface ResolvedDebeziumConfig {
  readonly kafka: ResolvedKafkaClientConfig;
  readonly topicPrefix: string;
  readonly schemas: boolean;
  readonly tombstones: boolean;
  readonly database: string;
}

/** Validates the publisher's settings (every problem at once) and fills defaults. */
export function resolveDebeziumConfig(config: DebeziumConfig = {}): ResolvedDebeziumConfig {
  const { topicPrefix = 'featureflow', schemas = true, tombstones = true, database, ...client } = config;
  const kafka = resolveKafkaClientConfig(client, 'the Debezium publisher');
  const problems: string[] = [];
  if (typeof topicPrefix !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(topicPrefix))
    problems.push(
      `topicPrefix must be letters, digits, '.', '_' or '-' (a Kafka topic name), got ${JSON.stringify(topicPrefix)}`,
    );
  if (typeof schemas !== 'boolean') problems.push('schemas must be true or false');
  if (typeof tombstones !== 'boolean') problems.push('tombstones must be true or false');
  const db = database ?? process.env.PGDATABASE ?? 'postgres';
  if (typeof db !== 'string' || db.length === 0) problems.push('database must be a non-empty string');
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid configuration of the Debezium publisher: ${problems.join('; ')}`,
    );
  }
  return Object.freeze({ kafka, topicPrefix, schemas, tombstones, database: db });
}
