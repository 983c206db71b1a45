/**
 * kafkajs encodes each record into an encoder of its own: a zero-filled 512-byte buffer, grown by
 * doubling (a new zero-filled buffer and a copy) for a larger value, a `Buffer.from` for each varint,
 * and an encoder object per header. Producing Debezium records, `Buffer` constructors and copies took
 * about a quarter of the publishing thread (bench kafka, throughput). {@link useFastRecordEncoding}
 * gives kafkajs's produce requests a record encoder that writes each record, byte for byte the same
 * (test/kafka-record-encoding.test.ts), into one buffer of its exact size from Node's buffer pool,
 * and makes the encoders that gather records into batches and requests grow into buffers that are not
 * zero-filled first (each byte is written before it is sent). The records' own cost fell from ~2 s
 * to 0.4 s of CPU per 200k rows; the batch and request encoders still copy each record four times,
 * into fresh memory, which now takes the time its zero-filling took, so the process's CPU per row is
 * about the same (86–89 ms per 1000 rows) and throughput rose within this machine's noise
 * (9.4k and 10.2k rows/s against 8.95k–9.3k). Those copies are gone for uncompressed requests:
 * produce-encoding.ts writes each record ({@link planRecord}, {@link writeRecord}) straight into the
 * request; this record encoder serves the compressed ones. Where kafkajs's files are not where
 * kafkajs 2.2 keeps them, or a produce request was encoded already, kafkajs's own encoding is kept.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The module of kafkajs 2.2 that its produce requests require to encode a record. */
export const KAFKAJS_RECORD_MODULE = 'kafkajs/src/protocol/recordBatch/record/v0/index.js';
const KAFKAJS_ENCODER_MODULE = 'kafkajs/src/protocol/encoder.js';

export type Bytes = Buffer | string | JoinedBytes | null | undefined;

/**
 * A key or value made of parts, written one after the other straight into the produce request,
 * never joined into a buffer of its own first: a Debezium value with schemas is a long cached schema
 * prefix and a short payload, and joining them cost an allocation and a copy of each record: bench
 * kafka's 1M-insert capture went from 14.5–14.9k rows/s (3 runs) to 15.3–16.1k (2 runs) without them.
 * `length` is its bytes. Only the fast encoding writes it: where that is
 * not installed, the producer hands kafkajs {@link toBuffer} instead (see `sendInOrder`).
 */
export class JoinedBytes {
  readonly length: number;
  /** Each part's bytes. */
  readonly lengths: readonly number[];
  constructor(readonly parts: readonly (Buffer | string)[]) {
    this.lengths = parts.map(byteLength);
    this.length = this.lengths.reduce((a, b) => a + b, 0);
  }

  /** The parts joined, as kafkajs's own encoding takes a value. */
  toBuffer(): Buffer {
    return Buffer.concat(
      this.parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : part)),
      this.length,
    );
  }
}

/** What kafkajs passes its record encoder. */
export interface RecordFields {
  readonly offsetDelta?: number;
  readonly timestampDelta?: number;
  readonly key?: Bytes;
  readonly value?: Bytes;
  readonly headers?: Readonly<Record<string, Bytes | readonly Bytes[]>>;
}

/** The part of kafkajs's encoder a record encoder's result needs: its bytes, as `buffer` reads them. */
interface KafkajsEncoder {
  buf: Buffer;
  offset: number;
  readonly buffer: Buffer;
}

interface EncoderClass {
  readonly prototype: KafkajsEncoder & { ensureAvailable(length: number): void };
  nextPowerOfTwo(value: number): number;
}

export type RecordEncoder = (fields: RecordFields) => KafkajsEncoder;

let installed: boolean | undefined;

/** kafkajs's own record encoder, once {@link useFastRecordEncoding} replaced it (for tests). */
export let kafkajsRecordEncoder: RecordEncoder | undefined;
/** The record encoder kafkajs gets in place of its own, once installed. */
export let fastRecordEncoder: RecordEncoder | undefined;

/** Bytes of `value` as an unsigned LEB128 varint (`value` < 2^53). */
function uvarintSize(value: number): number {
  let bytes = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    bytes++;
  }
  return bytes;
}

function writeUvarint(buffer: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    buffer[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  buffer[at++] = value;
  return at;
}

/** ZigZag of a 32-bit signed integer, as kafkajs's `writeVarInt` takes it (unsigned). */
const zigzag32 = (value: number): number => ((value << 1) ^ (value >> 31)) >>> 0;

/** ZigZag of an integer in the safe range, as kafkajs's `writeVarLong` (64-bit) takes it. */
function zigzag64(value: number): number {
  const v = Math.trunc(value);
  if (!Number.isSafeInteger(v) || Math.abs(v) >= 2 ** 51) {
    throw new RangeError(`a record's timestamp delta of ${value} ms is out of range`);
  }
  return v >= 0 ? v * 2 : -v * 2 - 1;
}

/** A key, value or header value: its bytes as kafkajs writes them (a string in UTF-8), or null. */
function bytesOf(value: Bytes): Buffer | string | JoinedBytes | null {
  if (value === null || value === undefined) return null;
  return Buffer.isBuffer(value) || value instanceof JoinedBytes ? value : String(value);
}

function byteLength(value: Buffer | string | JoinedBytes): number {
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
}

function writeBytes(buffer: Buffer, at: number, value: Buffer | string | JoinedBytes, length: number): number {
  if (typeof value === 'string') buffer.write(value, at, length, 'utf8');
  else if (value instanceof JoinedBytes) {
    let end = at;
    for (let i = 0; i < value.parts.length; i++) end = writeBytes(buffer, end, value.parts[i]!, value.lengths[i]!);
  } else value.copy(buffer, at);
  return at + length;
}

/** A record measured for writing: its fields as bytes are written, their lengths and its size. */
export interface RecordPlan {
  /** The record's bytes, its length prefix included. */
  readonly size: number;
  readonly body: number;
  readonly time: number;
  readonly offset: number;
  readonly key: Buffer | string | JoinedBytes | null;
  readonly keyLength: number;
  readonly value: Buffer | string | JoinedBytes | null;
  readonly valueLength: number;
  readonly names: readonly string[];
  readonly nameLengths: readonly number[];
  readonly values: readonly (Buffer | string)[];
  readonly valueLengths: readonly number[];
}

/** Measures a record (v0, as kafkajs writes it) for {@link writeRecord}. */
export function planRecord(
  key: Bytes,
  value: Bytes,
  headers: Readonly<Record<string, Bytes | readonly Bytes[]>> | undefined,
  offsetDelta: number,
  timestampDelta: number,
): RecordPlan {
  const k = bytesOf(key);
  const v = bytesOf(value);
  const keyLength = k === null ? -1 : byteLength(k);
  const valueLength = v === null ? -1 : byteLength(v);
  const time = zigzag64(timestampDelta);
  const offset = zigzag32(offsetDelta);
  const names: string[] = [];
  const values: (Buffer | string)[] = [];
  const all = headers ?? {};
  for (const name of Object.keys(all)) {
    const header = all[name];
    for (const h of Array.isArray(header) ? (header as readonly Bytes[]) : [header as Bytes]) {
      // kafkajs sizes a header's value with Buffer.byteLength, which throws for null and undefined.
      if (h === null || h === undefined) throw new TypeError(`header ${name} of a Kafka record has no value`);
      names.push(name);
      values.push(Buffer.isBuffer(h) ? h : String(h));
    }
  }
  let body =
    1 + // attributes
    uvarintSize(time) +
    uvarintSize(offset) +
    (k === null ? 1 : uvarintSize(zigzag32(keyLength)) + keyLength) +
    (v === null ? 1 : uvarintSize(zigzag32(valueLength)) + valueLength) +
    uvarintSize(zigzag32(names.length));
  const nameLengths = names.map((n) => Buffer.byteLength(n, 'utf8'));
  const valueLengths = values.map(byteLength);
  for (let h = 0; h < names.length; h++) {
    body += uvarintSize(zigzag32(nameLengths[h]!)) + nameLengths[h]!;
    body += uvarintSize(zigzag32(valueLengths[h]!)) + valueLengths[h]!;
  }
  const size = uvarintSize(zigzag32(body)) + body;
  return {
    size,
    body,
    time,
    offset,
    key: k,
    keyLength,
    value: v,
    valueLength,
    names,
    nameLengths,
    values,
    valueLengths,
  };
}

/** Writes a measured record into `buffer` at `at`; returns where it ends (`at + plan.size`). */
export function writeRecord(plan: RecordPlan, buffer: Buffer, at: number): number {
  const { key, keyLength, value, valueLength, names, nameLengths, values, valueLengths } = plan;
  at = writeUvarint(buffer, at, zigzag32(plan.body));
  buffer[at++] = 0;
  at = writeUvarint(buffer, at, plan.time);
  at = writeUvarint(buffer, at, plan.offset);
  at = writeUvarint(buffer, at, zigzag32(keyLength));
  if (key !== null) at = writeBytes(buffer, at, key, keyLength);
  at = writeUvarint(buffer, at, zigzag32(valueLength));
  if (value !== null) at = writeBytes(buffer, at, value, valueLength);
  at = writeUvarint(buffer, at, zigzag32(names.length));
  for (let h = 0; h < names.length; h++) {
    at = writeUvarint(buffer, at, zigzag32(nameLengths[h]!));
    at = writeBytes(buffer, at, names[h]!, nameLengths[h]!);
    at = writeUvarint(buffer, at, zigzag32(valueLengths[h]!));
    at = writeBytes(buffer, at, values[h]!, valueLengths[h]!);
  }
  return at;
}

/** The record encoder over kafkajs's `Encoder` class (its result is read through `buffer`). */
function recordEncoder(Encoder: EncoderClass): RecordEncoder {
  return ({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }) => {
    const plan = planRecord(key, value, headers, offsetDelta, timestampDelta);
    // Pooled: each byte of it is written.
    const buffer = Buffer.allocUnsafe(plan.size);
    const encoder = Object.create(Encoder.prototype) as KafkajsEncoder;
    encoder.buf = buffer;
    encoder.offset = writeRecord(plan, buffer, 0);
    return encoder;
  };
}

/**
 * Makes kafkajs encode produced records with fewer allocations; true when it will (idempotent).
 * Call before kafkajs sends its first produce request.
 */
export function useFastRecordEncoding(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let path: string;
  let Encoder: EncoderClass;
  try {
    path = require.resolve(KAFKAJS_RECORD_MODULE);
    Encoder = require(KAFKAJS_ENCODER_MODULE) as EncoderClass;
  } catch {
    return false;
  }
  // A produce request loaded already holds kafkajs's own record encoder.
  if (require.cache[path] || typeof Encoder.nextPowerOfTwo !== 'function') return false;
  kafkajsRecordEncoder = require(path) as RecordEncoder;
  fastRecordEncoder = recordEncoder(Encoder);
  require.cache[path]!.exports = fastRecordEncoder;
  // Batches and requests gather encoded records: grown into a buffer that is not zero-filled first,
  // since every encoder method writes each byte it reserves.
  Encoder.prototype.ensureAvailable = function ensureAvailable(this: KafkajsEncoder, length: number): void {
    if (this.offset + length <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Encoder.nextPowerOfTwo(this.offset + length));
    this.buf.copy(grown, 0, 0, this.offset);
    this.buf = grown;
  };
  installed = true;
  return true;
}
