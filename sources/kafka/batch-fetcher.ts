import type { Admin, Batch, Consumer, Kafka } from 'kafkajs';
import { kafkaError } from '../../clients/kafka/index.js';
import type { AsyncQueue } from '../../framework/async-queue.js';
import { FeatureflowError } from '../../framework/errors.js';
import type { ResolvedDebeziumTopicsConfig } from './debezium-topics-config.js';
import { kafkaCall } from './debezium-topics-errors.js';
import type { Offsets } from './kafka-offsets.js';

/** A Kafka batch handed from kafkajs' fetch loop to the source's follow. */
export interface Fetched {
  readonly batch: Batch;
  /** Called once the batch is durable (or abandoned). */
  readonly done: () => void;
}

/**
 * A consumer of every topic, starting at `next`: the group's offsets are set to them first (so
 * the fetch starts exactly there), and each fetched batch waits in `queue` until it is durable.
 */
export async function startFetching(
  kafka: Kafka,
  admin: Admin,
  config: ResolvedDebeziumTopicsConfig,
  next: Offsets,
  queue: AsyncQueue<Fetched>,
  stopped: { readonly value: boolean },
): Promise<Consumer> {
  const group = config.group;
  for (const { topic } of config.streams) {
    const partitions = [...next]
      .filter(([key]) => key.slice(0, key.lastIndexOf(':')) === topic)
      .map(([key, offset]) => ({
        partition: Number(key.slice(key.lastIndexOf(':') + 1)),
        offset: offset.toString(),
      }));
    try {
      await admin.setOffsets({ groupId: group, topic, partitions });
    } catch (error) {
      if (
        (error as { type?: string }).type === 'UNKNOWN_MEMBER_ID' ||
        /running/i.test(String((error as Error).message))
      )
        throw new FeatureflowError(
          'FF_KAFKA_GROUP_BUSY',
          `consumer group ${group} has running members (another featureflow, or another consumer, uses it); stop them, or give this source a group of its own (group: …)`,
          { cause: error },
        );
      throw kafkaError(error, `setting the offsets of group ${group}`, config.kafka.brokers);
    }
  }
  const consumer = kafka.consumer({
    groupId: group,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: config.maxBatchBytes,
  });
  consumer.on(consumer.events.CRASH, (event) => {
    const error = event.payload.error;
    if (!event.payload.restart)
      queue.fail(kafkaError(error, `reading ${config.streams.map((s) => s.topic).join(', ')}`, config.kafka.brokers));
  });
  await kafkaCall(config, 'subscribing to the Debezium topics', async () => {
    await consumer.connect();
    await consumer.subscribe({ topics: config.streams.map((s) => s.topic), fromBeginning: true });
  });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, heartbeat, resolveOffset }) => {
      // Once follow has stopped, nothing waits for batches: kafkajs' disconnect waits for this handler.
      if (batch.isEmpty() || stopped.value) return;
      await new Promise<void>((resolve) => queue.push({ batch, done: resolve }));
      // The next fetch starts after the batch (kafkajs' own position; nothing is committed here).
      if (!stopped.value) resolveOffset(batch.lastOffset());
      await heartbeat().catch(() => undefined);
    },
  });
  return consumer;
}
