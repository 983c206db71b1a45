import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, test, vi } from 'vitest';
import {
  fastProduceRequest,
  KAFKAJS_PRODUCE_MODULE,
  kafkajsProduceRequest,
  type ProduceArgs,
  useFastProduceEncoding,
} from '../clients/kafka/produce-encoding.js';
import { useNativeRecordCrc } from '../clients/kafka/record-crc.js';
import {
  fastRecordEncoder,
  JoinedBytes,
  KAFKAJS_RECORD_MODULE,
  kafkajsRecordEncoder,
  type RecordFields,
  useFastRecordEncoding,
} from '../clients/kafka/record-encoding.js';

const require = createRequire(import.meta.url);

/** A random string with multi-byte characters now and then. */
function text(length: number): string {
  const chars = ['a', 'Z', '0', 'é', '€', '𝄞', '"', '\n'];
  return Array.from({ length }, (_, i) => chars[(i * 7 + length) % chars.length]).join('');
}

function records(): RecordFields[] {
  const out: RecordFields[] = [
    {},
    { key: null, value: null },
    { key: 'k', value: '' },
    { key: Buffer.alloc(0), value: Buffer.alloc(0), headers: {} },
    { offsetDelta: 0, timestampDelta: -1, key: 'neg', value: 'x' },
    { offsetDelta: 2 ** 31 - 1, timestampDelta: 2 ** 40, key: 'big', value: 'y' },
    { key: 'h', value: 'v', headers: { position: '0/16B6F88', many: ['a', Buffer.from([0, 255]), 'ç'] } },
  ];
  for (let i = 0; i < 200; i++) {
    const size = [1, 63, 64, 127, 128, 511, 512, 1000, 5000, 70_000][i % 10]!;
    out.push({
      offsetDelta: i * 37,
      timestampDelta: (i * 1_000_003) % 100_000,
      key: i % 3 === 0 ? randomBytes(i % 20) : i % 3 === 1 ? text(i % 40) : null,
      value: i % 2 === 0 ? randomBytes(size) : text(size),
      headers: i % 4 === 0 ? {} : { ff_position: text(i % 30), ['hé' + (i % 5)]: randomBytes(i % 300) },
    });
  }
  return out;
}

describe('Kafka record encoding', () => {
  test("kafkajs's produce requests get the fast record encoder, which writes the same bytes as kafkajs's own", () => {
    expect(useFastRecordEncoding()).toBe(true);
    // Idempotent.
    expect(useFastRecordEncoding()).toBe(true);
    // What a produce request gets when it requires the record module, as kafkajs's do.
    const request = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js');
    expect(createRequire(request)('../../../recordBatch/record/v0')).toBe(fastRecordEncoder);
    expect(require(KAFKAJS_RECORD_MODULE)).toBe(fastRecordEncoder);
    for (const [i, record] of records().entries()) {
      const ours = fastRecordEncoder!(record);
      const theirs = kafkajsRecordEncoder!(record);
      expect(ours.buffer.equals(theirs.buffer), `record ${i}`).toBe(true);
      // As kafkajs sizes its encoders: the offset is the record's length.
      expect(ours.offset).toBe(theirs.buffer.length);
    }
  });

  test("a joined value is written as the bytes of its parts one after the other (record, produce request; joined for kafkajs's own)", async () => {
    useNativeRecordCrc();
    useFastRecordEncoding();
    useFastProduceEncoding();
    // Parts as a Debezium value has them (a schema prefix as bytes, the payload as text), multi-byte
    // characters included, and empty ones.
    const joined = Array.from({ length: 60 }, (_, i) => {
      const parts = [Buffer.from(text(i * 37)), text(i * 11), '', Buffer.alloc(0), '}'].slice(0, 2 + (i % 4));
      return { joined: new JoinedBytes(parts), whole: Buffer.concat(parts.map((p) => Buffer.from(p))) };
    });
    for (const [i, { joined: value, whole }] of joined.entries()) {
      expect(value.length).toBe(whole.length);
      // As kafkajs's own encoding gets it where the fast one is not installed.
      expect(value.toBuffer().equals(whole)).toBe(true);
      const record = { offsetDelta: i, timestampDelta: i * 3, key: `k${i}`, value };
      const expected = kafkajsRecordEncoder!({ ...record, value: whole }).buffer;
      expect(fastRecordEncoder!(record).buffer.equals(expected), `record ${i}`).toBe(true);
    }
    const request = (values: 'joined' | 'whole'): ProduceArgs => ({
      acks: -1,
      timeout: 30_000,
      topicData: [
        {
          topic: 't',
          partitions: [
            {
              partition: 0,
              messages: joined.map((j, i) => ({
                key: `k${i}`,
                value: j[values],
                timestamp: String(1_700_000_000_000 + i),
              })),
            },
          ],
        },
      ],
    });
    const [a, b] = [
      await fastProduceRequest!(request('joined')).encode(),
      await kafkajsProduceRequest!(request('whole')).encode(),
    ];
    expect(a.buf.subarray(0, a.offset).equals(b.buf.subarray(0, b.offset))).toBe(true);
  });

  test('a header without a value and a timestamp delta out of range fail, as in kafkajs', () => {
    useFastRecordEncoding();
    expect(() => fastRecordEncoder!({ key: 'k', value: 'v', headers: { h: undefined } })).toThrow(/header h/);
    expect(() => kafkajsRecordEncoder!({ key: 'k', value: 'v', headers: { h: undefined } })).toThrow();
    expect(() => fastRecordEncoder!({ timestampDelta: 2 ** 60 })).toThrow(/out of range/);
  });

  test('encoders grown past their first buffer keep every byte written', () => {
    useFastRecordEncoding();
    const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => {
      writeInt32(v: number): unknown;
      writeBytes(v: Buffer): unknown;
      writeVarIntString(v: string): unknown;
      buffer: Buffer;
    };
    const encoder = new Encoder();
    const parts: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const bytes = randomBytes(i * 13);
      encoder.writeInt32(i);
      encoder.writeBytes(bytes);
      const int = Buffer.alloc(4);
      int.writeInt32BE(i);
      const length = Buffer.alloc(4);
      length.writeInt32BE(bytes.length);
      parts.push(int, length, bytes);
    }
    expect(encoder.buffer.equals(Buffer.concat(parts))).toBe(true);
  });

  test("kafkajs's produce requests (versions 3 to 7) are encoded into one buffer, the same bytes as kafkajs's own", async () => {
    useNativeRecordCrc();
    useFastRecordEncoding();
    expect(useFastProduceEncoding()).toBe(true);
    expect(useFastProduceEncoding()).toBe(true);
    // What the later versions get when they require version 3, as kafkajs's do.
    const v7 = require.resolve('kafkajs/src/protocol/requests/produce/v7/request.js');
    expect(createRequire(v7)('../v3/request')).toBe(fastProduceRequest);
    expect(require(KAFKAJS_PRODUCE_MODULE)).toBe(fastProduceRequest);
    const Long = require('kafkajs/src/utils/long.js') as { fromNumber(v: number): unknown };
    const all = records();
    const messages = (from: number, count: number, stamped: boolean) =>
      all.slice(from, from + count).map(({ key, value, headers }, i) => ({
        key,
        value,
        headers,
        ...(stamped ? { timestamp: String(1_700_000_000_000 + ((i * 7919) % 5000)) } : {}),
      }));
    const cases: ProduceArgs[] = [
      { acks: -1, timeout: 30_000, topicData: [] },
      {
        acks: -1,
        timeout: 30_000,
        producerId: Long.fromNumber(4711),
        producerEpoch: 3,
        topicData: [
          {
            topic: 'bench.public.t',
            partitions: [
              { partition: 0, firstSequence: 12, messages: messages(0, 50, true) },
              { partition: 5, firstSequence: 0, messages: messages(50, 1, false) },
            ],
          },
          { topic: 'tôpic.transaction', partitions: [{ partition: 2, messages: messages(51, 150, false) }] },
        ],
      },
      {
        acks: 1,
        timeout: 5000,
        transactionalId: 'tx-é',
        topicData: [{ topic: 't', partitions: [{ partition: 1, messages: messages(100, 107, true) }] }],
      },
    ];
    // Records without a timestamp take the time of the encoding.
    const now = vi.spyOn(Date, 'now').mockReturnValue(1_700_000_123_456);
    try {
      for (const [i, args] of cases.entries()) {
        const ours = fastProduceRequest!(args);
        const theirs = kafkajsProduceRequest!(args);
        expect({ ...ours, encode: undefined, expectResponse: undefined }).toEqual({
          ...theirs,
          encode: undefined,
          expectResponse: undefined,
        });
        const [a, b] = [await ours.encode(), await theirs.encode()];
        expect(a.buf.subarray(0, a.offset).equals(b.buf.subarray(0, b.offset)), `request ${i}`).toBe(true);
      }
      // A compressed request is kafkajs's own.
      const gzip = { ...cases[1]!, compression: 1 };
      expect(fastProduceRequest!(gzip).encode.toString()).toBe(kafkajsProduceRequest!(gzip).encode.toString());
    } finally {
      now.mockRestore();
    }
  });
});
