import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { AsyncQueue } from '../../framework/async-queue.js';
import { FeatureflowError } from '../../framework/errors.js';
import type { TableSchema } from '../../framework/types.js';
import { decodeRecord } from './debezium-record.js';
import { TableShapes } from './debezium-shapes.js';
import type { ResolvedDebeziumTopicsConfig } from './debezium-topics-config.js';
import { kafkaCall, undecodable } from './debezium-topics-errors.js';

/**
 * The schema of each table as its topic's first change record gives it (read with a throwaway
 * consumer group): the log's first schema version, before any record is applied.
 */
export async function readFirstSchemas(
  kafka: Kafka,
  admin: Admin,
  config: ResolvedDebeziumTopicsConfig,
  tables: readonly string[],
): Promise<Map<string, TableSchema>> {
  const found = new Map<string, TableSchema>();
  if (tables.length === 0) return found;
  const tableOf = new Map(config.streams.map((s) => [s.topic, s.table]));
  const existing = new Set(await kafkaCall(config, 'listing topics', () => admin.listTopics()));
  for (const table of tables) {
    const topic = topicOf(config, table);
    const empty =
      !existing.has(topic) ||
      (await kafkaCall(config, `reading the offsets of ${topic}`, () => admin.fetchTopicOffsets(topic))).every(
        (p) => p.high === p.low,
      );
    if (empty) {
      throw new FeatureflowError(
        'FF_KAFKA_TOPIC_EMPTY',
        `topic ${topic} (table ${table}) ${existing.has(topic) ? 'holds no records' : 'does not exist'} on Kafka at ${config.kafka.brokers.join(',')}; ` +
          'start the Debezium connector (it writes the table’s snapshot there first), or fix topicPrefix/topics, then run featureflow again',
      );
    }
  }
  const group = `${config.group}-schemas-${randomBytes(4).toString('hex')}`;
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 200 });
  const shapes = new TableShapes([], config.columnTypes);
  const failed = new AsyncQueue<never>();
  try {
    await kafkaCall(config, 'reading the first records', async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: tables.map((t) => topicOf(config, t)), fromBeginning: true });
    });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const table = tableOf.get(topic)!;
        if (found.has(table)) return;
        try {
          const changes = decodeRecord(table, message, config, shapes);
          const change = changes.find((c) => c.op !== 't');
          if (change) {
            const schema = shapes.takeNew().find((s) => s.table === table);
            if (schema) found.set(table, { table, columns: schema.columns, keyColumns: schema.keyColumns });
          }
        } catch (error) {
          failed.fail(undecodable(error, topic, partition, message.offset));
        }
        if (tables.every((t) => found.has(t))) failed.end();
      },
    });
    // Bounded: every topic holds a record; a topic of tombstones and truncates only never gives a schema.
    const deadline = Date.now() + 60_000;
    while (!failed.done && Date.now() < deadline) await failed.take(200);
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await admin.deleteGroups([group]).catch(() => undefined);
  }
  for (const table of tables) {
    if (!found.has(table))
      throw new FeatureflowError(
        'FF_KAFKA_TOPIC_EMPTY',
        `topic ${topicOf(config, table)} (table ${table}) holds no row change to take the table's columns from within 60 s; ` +
          'start the Debezium connector with snapshot.mode=initial (or write a row), then run featureflow again',
      );
  }
  return found;
}

function topicOf(config: ResolvedDebeziumTopicsConfig, table: string): string {
  return config.streams.find((s) => s.table === table)!.topic;
}
