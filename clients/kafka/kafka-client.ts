import { Kafka, logLevel, type LogEntry, Partitioners, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { ResolvedKafkaClientConfig } from './kafka-client-config.js';

/**
 * A kafkajs client for resolved settings; kafkajs' own log lines (warnings and errors) go to `logger`
 * under `component: 'kafka'`, without the SASL settings.
 */
export function createKafka(config: ResolvedKafkaClientConfig, logger?: Logger): Kafka {
  const log = logger?.child({ component: 'kafka' });
  return new Kafka({
    brokers: [...config.brokers],
    clientId: config.clientId,
    ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
    ...(config.sasl !== undefined ? { sasl: config.sasl } : {}),
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    logLevel: log ? logLevel.WARN : logLevel.NOTHING,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        if (!log) return;
        const { message, timestamp: _t, logger: _l, ...fields } = entry as LogEntry['log'] & { logger?: string };
        if (level <= logLevel.ERROR) log.error(fields, message);
        else if (level === logLevel.WARN) log.warn(fields, message);
        else log.debug(fields, message);
      },
  });
}

/**
 * A connected producer that keeps each partition's order: idempotent, one request in flight (so a
 * retried request cannot overtake the next), keys partitioned by Kafka's default (murmur2) partitioner
 * as Java clients do, so a key's records share a partition whoever wrote them.
 */
export async function connectOrderedProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return producer;
}
