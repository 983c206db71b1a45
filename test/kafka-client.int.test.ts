import { Kafka, logLevel, Partitioners, type Consumer, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { randomName, waitFor } from './helpers.js';

// kafkajs 2.2.4 against the run's real Kafka 4.x broker (test/global-setup.ts). Kafka 4.0 removed
// the oldest protocol versions (KIP-896); kafkajs negotiates through ApiVersions, and this round trip
// goes through every API featureflow's Kafka bus needs: CreateTopics, Produce, the classic consumer
// group protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup), Fetch, OffsetCommit,
// OffsetFetch, ListOffsets.

const kafka = new Kafka({ clientId: 'featureflow-test', brokers: inject('kafkaBrokers'), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });

beforeAll(async () => {
  await admin.connect();
  await producer.connect();
});
afterAll(async () => {
  await producer.disconnect();
  await admin.disconnect();
});

interface Received {
  partition: number;
  offset: bigint;
  /** The message's key. */
  key: string;
  /** The key written in the value (`<key>:<seq>`): must equal `key`. */
  valueKey: string;
  seq: number;
}

/** `perKey` messages for each key, values `<key>:<seq>` with seq from `from`, one key after another. */
function messages(keys: string[], from: number, perKey: number) {
  return Array.from({ length: perKey }, (_, i) => keys.map((key) => ({ key, value: `${key}:${from + i}` }))).flat();
}

/** Runs a consumer of `topic` in `groupId` (no auto-commit) that appends every message to `into`. */
async function consume(groupId: string, topic: string, into: Received[]): Promise<Consumer> {
  // disconnect() waits for the in-flight long-poll fetch: keep it short (default 5 s).
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, retry: { retries: 10 } });
  await consumer.connect();
  // fromBeginning only applies to partitions the group has no committed offset for.
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
      const [valueKey, seq] = message.value!.toString().split(':');
      into.push({
        partition,
        offset: BigInt(message.offset),
        key: message.key!.toString(),
        valueKey: valueKey!,
        seq: Number(seq),
      });
    },
  });
  return consumer;
}

/** Each key's sequence numbers in the order they were consumed, and the partitions each key came from. */
function byKey(received: Received[]) {
  const seqs = new Map<string, number[]>();
  const partitions = new Map<string, Set<number>>();
  for (const r of received) {
    seqs.set(r.key, [...(seqs.get(r.key) ?? []), r.seq]);
    partitions.set(r.key, (partitions.get(r.key) ?? new Set()).add(r.partition));
  }
  return { seqs, partitions };
}

describe('kafkajs against Kafka 4.x', () => {
  test('a new consumer in the group resumes exactly after the committed offsets, per-key order kept', async () => {
    const topic = randomName('topic');
    const groupId = randomName('group');
    const keys = Array.from({ length: 12 }, (_, i) => `entity-${i}`);
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })).toBe(true);

    // First batch: 12 keys × 5 messages, one produce call per round so the per-key order is the send order.
    for (let i = 0; i < 5; i++) await producer.send({ topic, messages: messages(keys, i, 1) });
    const first: Received[] = [];
    const consumer1 = await consume(groupId, topic, first);
    try {
      await waitFor('the first 60 messages', () => first.length >= 60);
      // Commit the next offset to read (last consumed + 1), per partition.
      const next = new Map<number, bigint>();
      for (const r of first) if ((next.get(r.partition) ?? -1n) < r.offset + 1n) next.set(r.partition, r.offset + 1n);
      await consumer1.commitOffsets(
        [...next].map(([partition, offset]) => ({ topic, partition, offset: offset.toString() })),
      );
    } finally {
      await consumer1.disconnect();
    }
    expect(first).toHaveLength(60);
    expect(first.filter((r) => r.key !== r.valueKey)).toEqual([]);
    const firstByKey = byKey(first);
    for (const key of keys) {
      expect(firstByKey.seqs.get(key)).toEqual([0, 1, 2, 3, 4]);
      expect(firstByKey.partitions.get(key)?.size).toBe(1);
    }
    // The keys spread over all three partitions (12 keys: a partitioner sending all to one would be a bug).
    expect(new Set(first.map((r) => r.partition)).size).toBe(3);

    // The broker holds the group's commits: equal to each partition's end offset.
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    const committedByPartition = new Map(committed[0]!.partitions.map((p) => [p.partition, p.offset]));
    for (const end of ends) expect(committedByPartition.get(end.partition)).toBe(end.high);

    // Second batch while nobody consumes, then a new member of the same group.
    for (let i = 5; i < 8; i++) await producer.send({ topic, messages: messages(keys, i, 1) });
    const second: Received[] = [];
    const consumer2 = await consume(groupId, topic, second);
    try {
      await waitFor('the next 36 messages', () => second.length >= 36);
    } finally {
      await consumer2.disconnect();
    }
    expect(second).toHaveLength(36);
    // Nothing re-delivered: each partition's first message is the one at the committed offset (a
    // redelivery would come first, in offset order), and no message of the first batch came again.
    for (const end of ends) {
      const firstAgain = second.find((r) => r.partition === end.partition);
      expect(firstAgain?.offset.toString()).toBe(end.high);
    }
    expect(second.filter((r) => r.seq < 5)).toEqual([]);
    // Nothing missed, order per key kept, and each key stayed on its partition.
    const secondByKey = byKey(second);
    for (const key of keys) {
      expect(secondByKey.seqs.get(key)).toEqual([5, 6, 7]);
      expect(secondByKey.partitions.get(key)).toEqual(firstByKey.partitions.get(key));
    }
    // The group caught up to the end of every partition.
    const endsAfter = await admin.fetchTopicOffsets(topic);
    for (const end of endsAfter) {
      const last = second.filter((r) => r.partition === end.partition).at(-1);
      expect((last!.offset + 1n).toString()).toBe(end.high);
    }
    await admin.deleteTopics({ topics: [topic] });
  });
});
