/**
 * kafkajs builds a produce request in layers, each an encoder of its own that the next one copies:
 * the records into a batch body, the body behind its CRC, that behind the batch's offset, the batch
 * behind its partition, the partitions behind their topic and the topics into the request, each
 * layer into memory freshly allocated (the batch body grown by doubling as records arrive), before
 * the request's framing copies it twice more. Producing Debezium records, those copies and the
 * garbage they leave took about a quarter of the publishing thread (bench kafka, throughput).
 * {@link useFastProduceEncoding} gives kafkajs's produce requests (versions 3 to 7, which share
 * version 3's encoding) an encoder that writes every uncompressed request, byte for byte the same
 * (test/kafka-record-encoding.test.ts), into one buffer of its exact size: each record is written
 * there directly, as the record encoder (record-encoding.ts) would write it on its own. A compressed request is encoded by kafkajs, as is everything where kafkajs's files are not
 * where kafkajs 2.2 keeps them, or a produce request was encoded already.
 */
import { createRequire } from 'node:module';
import { type Bytes, planRecord, type RecordPlan, writeRecord } from './record-encoding.js';

const require = createRequire(import.meta.url);

/** The module of kafkajs 2.2 that encodes produce requests of version 3 (and, through it, 4 to 7). */
export const KAFKAJS_PRODUCE_MODULE = 'kafkajs/src/protocol/requests/produce/v3/request.js';
const LATER_PRODUCE_MODULES = [4, 5, 6, 7].map((v) => `kafkajs/src/protocol/requests/produce/v${v}/request.js`);
const KAFKAJS_ENCODER_MODULE = 'kafkajs/src/protocol/encoder.js';
const KAFKAJS_CRC_MODULE = 'kafkajs/src/protocol/recordBatch/crc32C/index.js';
const KAFKAJS_LONG_MODULE = 'kafkajs/src/utils/long.js';

/** What kafkajs's encoders hold: the bytes written are `buf[0, offset)`. */
interface Encoded {
  buf: Buffer;
  offset: number;
}

/** The kafkajs encoder methods the fixed-size fields are written with (so they match kafkajs's exactly). */
interface KafkajsEncoder extends Encoded {
  writeInt16(value: number): KafkajsEncoder;
  writeInt32(value: number): KafkajsEncoder;
  writeInt64(value: unknown): KafkajsEncoder;
  writeString(value: string | null): KafkajsEncoder;
}

type EncoderClass = (new () => KafkajsEncoder) & { readonly prototype: KafkajsEncoder };

interface Message {
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: Readonly<Record<string, Bytes | readonly Bytes[]>>;
  readonly timestamp?: string | number | null;
}

interface PartitionData {
  readonly partition: number;
  readonly firstSequence?: number;
  readonly messages: readonly Message[];
}

interface TopicData {
  readonly topic: string;
  readonly partitions: readonly PartitionData[];
}

/** What kafkajs passes a produce request's module. */
export interface ProduceArgs {
  readonly acks: number;
  readonly timeout: number;
  readonly transactionalId?: string | null;
  readonly producerId?: unknown;
  readonly producerEpoch?: number;
  readonly compression?: number;
  readonly topicData: readonly TopicData[];
}

/** What a produce request's module returns: the request kafkajs's connection sends. */
export interface ProduceRequest {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly apiName: string;
  expectResponse(): boolean;
  encode(): Promise<Encoded>;
}

export type ProduceModule = (args: ProduceArgs) => ProduceRequest;

let installed: boolean | undefined;

/** kafkajs's own produce request module (version 3), once {@link useFastProduceEncoding} replaced it (for tests). */
export let kafkajsProduceRequest: ProduceModule | undefined;
/** The produce request module kafkajs gets in place of its own, once installed. */
export let fastProduceRequest: ProduceModule | undefined;

const MAGIC_BYTE = 2;
const TRANSACTIONAL_MASK = 16;
/** partition, record set size, first offset, batch length, leader epoch, magic, CRC. */
const PARTITION_PREFIX = 4 + 4 + 8 + 4 + 4 + 1 + 4;

/** The encoder of uncompressed produce requests, over kafkajs's modules. */
function produceEncoder(Encoder: EncoderClass, crc32c: (bytes: Buffer) => number, minusOne: unknown) {
  /** A batch's records and its body's fixed fields, as kafkajs's record batch (v0) writes them. */
  const batchOf = (
    { messages, firstSequence = 0 }: PartitionData,
    transactional: boolean,
    producerId: unknown,
    producerEpoch: number,
  ) => {
    const dateNow = Date.now();
    // As kafkajs orders them (its sort compares the timestamps as strings).
    const stamps = messages
      .map((m) => m.timestamp)
      .filter((t) => t !== null && t !== undefined)
      .sort();
    const timestamps = stamps.length === 0 ? [dateNow] : stamps;
    const first = timestamps[0]!;
    const records: RecordPlan[] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const { key, value, headers, timestamp } = messages[i]!;
      records[i] = planRecord(key, value, headers, i, Number(timestamp || dateNow) - Number(first));
    }
    const head = new Encoder()
      .writeInt16(transactional ? TRANSACTIONAL_MASK : 0)
      .writeInt32(records.length - 1)
      .writeInt64(first)
      .writeInt64(timestamps.at(-1))
      .writeInt64(producerId)
      .writeInt16(producerEpoch)
      .writeInt32(firstSequence)
      .writeInt32(records.length);
    let body = head.offset;
    for (const r of records) body += r.size;
    return { head, records, body };
  };

  return async ({
    acks,
    timeout,
    transactionalId = null,
    producerId = minusOne,
    producerEpoch = 0,
    topicData,
  }: ProduceArgs): Promise<Encoded> => {
    const start = new Encoder().writeString(transactionalId).writeInt16(acks).writeInt32(timeout);
    start.writeInt32(topicData.length);
    const topics = topicData.map(({ topic, partitions }) => ({
      head: new Encoder().writeString(topic).writeInt32(partitions.length),
      partitions: partitions.map((p) => ({
        partition: p.partition,
        ...batchOf(p, Boolean(transactionalId), producerId, producerEpoch),
      })),
    }));
    let total = start.offset;
    for (const t of topics) {
      total += t.head.offset;
      for (const p of t.partitions) total += PARTITION_PREFIX + p.body;
    }
    // Pooled or not, every byte of it is written below.
    const buf = Buffer.allocUnsafe(total);
    let at = start.buf.copy(buf, 0, 0, start.offset);
    for (const t of topics) {
      at += t.head.buf.copy(buf, at, 0, t.head.offset);
      for (const p of t.partitions) {
        const batchLength = 4 + 1 + 4 + p.body;
        at = buf.writeInt32BE(p.partition, at);
        at = buf.writeInt32BE(8 + 4 + batchLength, at);
        at = buf.writeInt32BE(0, at); // first offset (int64 0)
        at = buf.writeInt32BE(0, at);
        at = buf.writeInt32BE(batchLength, at);
        at = buf.writeInt32BE(0, at); // partition leader epoch
        at = buf.writeInt8(MAGIC_BYTE, at);
        const crcAt = at;
        at += 4;
        const bodyAt = at;
        at += p.head.buf.copy(buf, at, 0, p.head.offset);
        for (const r of p.records) at = writeRecord(r, buf, at);
        buf.writeUInt32BE(crc32c(buf.subarray(bodyAt, at)), crcAt);
      }
    }
    if (at !== total) throw new Error(`a produce request was encoded into ${at} of its ${total} bytes`);
    const encoded = Object.create(Encoder.prototype) as Encoded;
    encoded.buf = buf;
    encoded.offset = at;
    return encoded;
  };
}

/**
 * Makes kafkajs encode uncompressed produce requests with each record written once; true when it will
 * (idempotent). Call before kafkajs sends its first produce request, and after installing the
 * checksum kafkajs should use (it is taken from kafkajs's module here).
 */
export function useFastProduceEncoding(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let path: string;
  try {
    path = require.resolve(KAFKAJS_PRODUCE_MODULE);
    // A later version loaded already holds kafkajs's own version 3.
    if (require.cache[path] || LATER_PRODUCE_MODULES.some((m) => require.cache[require.resolve(m)])) return false;
  } catch {
    return false;
  }
  let encode: ReturnType<typeof produceEncoder>;
  try {
    const Encoder = require(KAFKAJS_ENCODER_MODULE) as EncoderClass;
    const Long = require(KAFKAJS_LONG_MODULE) as { fromInt(value: number): unknown };
    encode = produceEncoder(Encoder, require(KAFKAJS_CRC_MODULE) as (bytes: Buffer) => number, Long.fromInt(-1));
    kafkajsProduceRequest = require(path) as ProduceModule;
  } catch {
    return false;
  }
  const original = kafkajsProduceRequest;
  fastProduceRequest = (args) => {
    const request = original(args);
    // kafkajs's `Types.None` is 0.
    if ((args.compression ?? 0) !== 0) return request;
    return { ...request, encode: () => encode(args) };
  };
  require.cache[path]!.exports = fastProduceRequest;
  installed = true;
  return true;
}
