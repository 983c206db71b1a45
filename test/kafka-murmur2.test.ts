import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { PartitionMetadata } from 'kafkajs';
import { describe, expect, test } from 'vitest';
import { KeyHashPartitioner, murmur2 } from '../clients/kafka/murmur2.js';

// kafkajs' own murmur2 (64-bit Long arithmetic), which its DefaultPartitioner uses: the reference.
const kafkajsMurmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (
  key: Buffer,
) => number;

const meta = (partitionId: number, leader: number): PartitionMetadata => ({
  partitionId,
  leader,
  partitionErrorCode: 0,
  replicas: [],
  isr: [],
});

describe('murmur2', () => {
  test("gives the Java client's hashes (Kafka's UtilsTest cases)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key)), key).toBe(hash);
  });

  test("equals kafkajs' murmur2 on keys of every length modulo 4, with high bytes", () => {
    for (let i = 0; i < 2000; i++) {
      const key = randomBytes(i % 67);
      expect(murmur2(key), key.toString('hex')).toBe(kafkajsMurmur2(key));
    }
  });

  test('the partitioner puts a string key and its bytes on the partition of the hash, a set partition first', () => {
    const partition = KeyHashPartitioner();
    const partitionMetadata = Array.from({ length: 7 }, (_, i) => meta(i, 1));
    for (const key of ['a', 'entity-1', '{"id":12345}', 'ключ']) {
      const expected = (kafkajsMurmur2(Buffer.from(key)) & 0x7fffffff) % 7;
      expect(partition({ topic: 't', partitionMetadata, message: { key, value: null } })).toBe(expected);
      expect(partition({ topic: 't', partitionMetadata, message: { key: Buffer.from(key), value: null } })).toBe(
        expected,
      );
    }
    expect(partition({ topic: 't', partitionMetadata, message: { key: 'a', value: null, partition: 5 } })).toBe(5);
  });

  test('the partitioner spreads keyless messages round robin over the partitions with a leader', () => {
    const partition = KeyHashPartitioner();
    const partitionMetadata = [0, 1, 2, 3].map((i) => meta(i, i === 2 ? -1 : 1));
    const picked = Array.from({ length: 6 }, () =>
      partition({ topic: 't', partitionMetadata, message: { value: 'v' } }),
    );
    expect(picked).not.toContain(2);
    expect(new Set(picked.slice(0, 3)).size).toBe(3);
    expect(picked.slice(3)).toEqual(picked.slice(0, 3));
  });
});
