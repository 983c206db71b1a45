import { Kafka, logLevel, type LogEntry, type Message, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { ResolvedKafkaClientConfig } from './kafka-client-config.js';
import { KeyHashPartitioner } from './murmur2.js';
import { useFastProduceEncoding } from './produce-encoding.js';
import { useNativeRecordCrc } from './record-crc.js';
import { JoinedBytes, useFastRecordEncoding } from './record-encoding.js';

/**
 * A kafkajs client for resolved settings; kafkajs' own log lines (warnings and errors) go to `logger`
 * under `component: 'kafka'`, without the SASL settings.
 */
export function createKafka(config: ResolvedKafkaClientConfig, logger?: Logger): Kafka {
  useNativeRecordCrc();
  useFastRecordEncoding();
  useFastProduceEncoding();
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
 * as Java clients do, so a key's records share a partition whoever wrote them (the hash in 32-bit
 * arithmetic: kafkajs' own took more time than encoding the record).
 */
export async function connectOrderedProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: KeyHashPartitioner,
  });
  await producer.connect();
  return producer;
}

/** A record and the topic it goes to; its value may be {@link JoinedBytes} (see {@link sendInOrder}). */
export interface TopicMessage {
  readonly topic: string;
  readonly message: Omit<Message, 'value'> & { readonly value: Message['value'] | JoinedBytes };
}

/** Most bytes of records one produce request carries: well below the brokers' default `message.max.bytes` (1 MiB). */
export const MAX_REQUEST_BYTES = 512 * 1024;

/** A record's size on the wire, near enough: key, value, headers and the record's own overhead. */
function sizeOf({ topic, message }: TopicMessage): number {
  let bytes = 64 + topic.length;
  const { key, value, headers } = message;
  if (key) bytes += typeof key === 'string' ? Buffer.byteLength(key) : key.length;
  if (value) bytes += typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  for (const [name, header] of Object.entries(headers ?? {})) {
    bytes += name.length;
    for (const h of Array.isArray(header) ? header : [header])
      if (h !== undefined) bytes += typeof h === 'string' ? Buffer.byteLength(h) : h.length;
  }
  return bytes;
}

/**
 * Sends records in their order (acks from every in-sync replica), in as many produce requests as
 * keep each under {@link MAX_REQUEST_BYTES}, one after another: a large transaction's records would
 * otherwise make one batch per partition over the brokers' limit (MESSAGE_TOO_LARGE). With the
 * ordered producer (one request in flight), each partition keeps the records' order. A value of
 * {@link JoinedBytes} goes as it is to the fast record encoding, joined into a buffer for kafkajs's own.
 */
export async function sendInOrder(
  producer: Producer,
  records: readonly TopicMessage[],
  maxRequestBytes = MAX_REQUEST_BYTES,
): Promise<void> {
  const joinValues = !useFastRecordEncoding();
  let start = 0;
  while (start < records.length) {
    let end = start;
    let bytes = 0;
    while (end < records.length && (end === start || bytes + sizeOf(records[end]!) <= maxRequestBytes))
      bytes += sizeOf(records[end++]!);
    const byTopic = new Map<string, Message[]>();
    for (let i = start; i < end; i++) {
      const { topic, message } = records[i]!;
      let messages = byTopic.get(topic);
      if (!messages) byTopic.set(topic, (messages = []));
      const { value } = message;
      // kafkajs's types know no JoinedBytes: the fast record encoding writes them as they are.
      messages.push(
        joinValues && value instanceof JoinedBytes ? { ...message, value: value.toBuffer() } : (message as Message),
      );
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    start = end;
  }
}
