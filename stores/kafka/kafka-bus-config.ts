import {
  type KafkaClientConfig,
  type ResolvedKafkaClientConfig,
  resolveKafkaClientConfig,
} from '../../clients/kafka/index.js';
import { FeatureflowError } from '../../framework/errors.js';

/** Settings of the Kafka change bus (`kafkaBus({ … })`). */
export interface KafkaBusConfig extends KafkaClientConfig {
  /**
   * Feature rows of a view version go to `<topicPrefix>.<view>.v<version>` (characters other than
   * letters, digits, `.`, `_`, `-` in a view's name become `_`). Default `featureflow`.
   */
  topicPrefix?: string;
  /**
   * The consumer group of the `featureflow serve` processes sharing the work: each gets some
   * partitions. Default `featureflow-serve`.
   */
  group?: string;
  /**
   * Partitions of the topics the bus creates (an existing topic keeps its own): the most serving
   * processes that can share one view. Default 6.
   */
  partitions?: number;
  /** Replication factor of the topics the bus creates. Default: the brokers' `default.replication.factor`. */
  replicationFactor?: number;
  /**
   * How long a serving process may go silent before the group gives its partitions to the others
   * (Kafka's `session.timeout.ms`; the brokers allow 6 000–1 800 000 by default). Default 10 000.
   */
  sessionTimeoutMs?: number;
}

/** The settings with their defaults filled in; frozen. */
export interface ResolvedKafkaBusConfig {
  readonly kafka: ResolvedKafkaClientConfig;
  readonly topicPrefix: string;
  readonly group: string;
  readonly partitions: number;
  readonly replicationFactor?: number;
  readonly sessionTimeoutMs: number;
}

const TOPIC_CHARS = /^[A-Za-z0-9._-]{1,200}$/;

/** Validates the bus's settings (every problem at once), fills defaults and freezes them. */
export function resolveKafkaBusConfig(config: KafkaBusConfig = {}): ResolvedKafkaBusConfig {
  const {
    topicPrefix = 'featureflow',
    group = 'featureflow-serve',
    partitions = 6,
    replicationFactor,
    sessionTimeoutMs = 10_000,
    ...client
  } = config;
  const kafka = resolveKafkaClientConfig(client, 'the Kafka change bus');
  const problems: string[] = [];
  if (typeof topicPrefix !== 'string' || !TOPIC_CHARS.test(topicPrefix))
    problems.push(
      `topicPrefix must be letters, digits, '.', '_' or '-' (a Kafka topic name), got ${JSON.stringify(topicPrefix)}`,
    );
  if (typeof group !== 'string' || group.length === 0) problems.push('group must be a non-empty string');
  if (!(Number.isInteger(partitions) && partitions > 0 && partitions <= 10_000))
    problems.push(`partitions must be a whole number from 1 to 10000, got ${String(partitions)}`);
  if (replicationFactor !== undefined && !(Number.isInteger(replicationFactor) && replicationFactor > 0))
    problems.push(`replicationFactor must be a positive whole number, got ${String(replicationFactor)}`);
  if (!(Number.isInteger(sessionTimeoutMs) && sessionTimeoutMs >= 1_000))
    problems.push(
      `sessionTimeoutMs must be a whole number of milliseconds of at least 1000, got ${String(sessionTimeoutMs)}`,
    );
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid configuration of the Kafka change bus: ${problems.join('; ')}`,
    );
  }
  return Object.freeze({
    kafka,
    topicPrefix,
    group,
    partitions,
    ...(replicationFactor !== undefined ? { replicationFactor } : {}),
    sessionTimeoutMs,
  });
}
