import { randomInt } from 'node:crypto';
import type { ICustomPartitioner } from 'kafkajs';

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`) of some bytes, as a signed 32-bit integer: the
 * hash that picks a keyed record's partition. In 32-bit integer arithmetic (kafkajs' own goes through
 * 64-bit `Long` objects, several allocations per four bytes of key).
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  // The last one to three bytes (Java falls through the cases 3, 2, 1).
  const tail = length & ~3;
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[tail + 2]! << 16;
    if (rest >= 2) h ^= data[tail + 1]! << 8;
    h ^= data[tail]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * Kafka's default partitioning, as kafkajs' `Partitioners.DefaultPartitioner` and the Java clients do
 * it: a message's own partition, else its key's murmur2 hash modulo the partition count (a key's
 * records share a partition whoever wrote them), else round robin over the available partitions.
 */
export const KeyHashPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  const next = (topic: string) => {
    const n = (counters.get(topic) ?? randomInt(2 ** 31)) + 1;
    counters.set(topic, n);
    return n & 0x7fffffff;
  };
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key !== null && key !== undefined)
      return (murmur2(typeof key === 'string' ? Buffer.from(key) : key) & 0x7fffffff) % partitionMetadata.length;
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return available[next(topic) % available.length]!.partitionId;
    return next(topic) % partitionMetadata.length;
  };
};
