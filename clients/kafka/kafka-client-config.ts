import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import { FeatureflowError } from '../../framework/errors.js';

/**
 * How featureflow reaches a Kafka cluster: the part every Kafka adapter shares (the change bus, the
 * Debezium-envelope publisher, the Debezium-topics source).
 */
export interface KafkaClientConfig {
  /** Bootstrap brokers, `host:port`. Default: `KAFKA_BROKERS` (comma-separated), else `127.0.0.1:9092`. */
  brokers?: readonly string[];
  /** The client id the brokers see (and quotas apply to). Default `featureflow`. */
  clientId?: string;
  /** TLS: `true`, or Node's TLS options (CA, client certificate). Default off. */
  ssl?: boolean | ConnectionOptions;
  /** SASL authentication (`plain`, `scram-sha-256`, `scram-sha-512`, …). Default none. Never logged. */
  sasl?: SASLOptions;
  /** Milliseconds a connection attempt may take. Default 3 000. */
  connectionTimeoutMs?: number;
  /** Milliseconds a request may wait for its answer. Default 30 000. */
  requestTimeoutMs?: number;
}

/** The settings with their defaults filled in; frozen. */
export interface ResolvedKafkaClientConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl?: boolean | ConnectionOptions;
  readonly sasl?: SASLOptions;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

const BROKER = /^[^\s:/]+:\d{1,5}$/;

/**
 * Validates the client settings (every problem listed, prefixed by `what`, e.g. `the Kafka change
 * bus`), fills defaults from the environment and freezes them.
 */
export function resolveKafkaClientConfig(config: KafkaClientConfig, what: string): ResolvedKafkaClientConfig {
  const problems: string[] = [];
  const fromEnv = process.env.KAFKA_BROKERS?.split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  const brokers = config.brokers ?? (fromEnv && fromEnv.length > 0 ? fromEnv : ['127.0.0.1:9092']);
  if (!Array.isArray(brokers) || brokers.length === 0) problems.push('brokers must list at least one host:port');
  else
    for (const b of brokers)
      if (typeof b !== 'string' || !BROKER.test(b))
        problems.push(`brokers: ${JSON.stringify(b)} is not host:port (e.g. 127.0.0.1:9092)`);
  const clientId = config.clientId ?? 'featureflow';
  if (typeof clientId !== 'string' || clientId.length === 0) problems.push('clientId must be a non-empty string');
  const timeout = (name: string, value: number | undefined, fallback: number) => {
    const v = value ?? fallback;
    if (!(Number.isInteger(v) && v > 0)) problems.push(`${name} must be a positive whole number of milliseconds`);
    return v;
  };
  const connectionTimeoutMs = timeout('connectionTimeoutMs', config.connectionTimeoutMs, 3_000);
  const requestTimeoutMs = timeout('requestTimeoutMs', config.requestTimeoutMs, 30_000);
  if (problems.length > 0) {
    throw new FeatureflowError('FF_CONFIG_INVALID', `invalid configuration of ${what}: ${problems.join('; ')}`);
  }
  return Object.freeze({
    brokers: Object.freeze([...brokers]),
    clientId,
    ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
    ...(config.sasl !== undefined ? { sasl: config.sasl } : {}),
    connectionTimeoutMs,
    requestTimeoutMs,
  });
}
