/**
 * Decoders of PostgreSQL's binary send format: the fields of `COPY … TO STDOUT (FORMAT binary)` and
 * of pgoutput with `binary 'true'` (both use each type's `typsend` function, so the bytes are the same).
 * Every decoder returns the exact {@link Value} form documented in `framework/types.ts`.
 *
 * Wire formats follow PostgreSQL's `*_send` functions (src/backend/utils/adt/); the text forms follow
 * its `*_out` functions with `DateStyle=ISO`, `TimeZone=UTC` and `IntervalStyle=iso_8601`.
 */
import type { Value } from '../../framework/types.js';
import { dateDecoder, decodeInterval, decodeTime, decodeTimetz, timestampDecoder } from './pg-datetime.js';
import { decodeNumeric } from './pg-numeric.js';

/** Decodes the field bytes `buf[start, end)`. The result never shares memory with `buf`. */
export type Decoder = (buf: Buffer, start: number, end: number) => Value;

// ---------------------------------------------------------------------------------------------
// Scalars

const decodeBool: Decoder = (buf, start) => buf[start] !== 0;
/**
 * Big-endian integers at `s`, read byte by byte: `Buffer#readInt16BE` and its kin check their
 * arguments on every call, which shows in loops over every field of a snapshot.
 */
export const int16At = (buf: Uint8Array, s: number): number => ((buf[s]! << 24) >> 16) | buf[s + 1]!;
export const uint16At = (buf: Uint8Array, s: number): number => (buf[s]! << 8) | buf[s + 1]!;
export const int32At = (buf: Uint8Array, s: number): number =>
  (buf[s]! << 24) | (buf[s + 1]! << 16) | (buf[s + 2]! << 8) | buf[s + 3]!;
export const uint32At = (buf: Uint8Array, s: number): number => int32At(buf, s) >>> 0;

const decodeInt2: Decoder = (buf, start) => buf.readInt16BE(start);
const decodeInt4: Decoder = (buf, start) => buf.readInt32BE(start);
const decodeOid: Decoder = (buf, start) => buf.readUInt32BE(start);
const decodeInt8: Decoder = (buf, start) => buf.readBigInt64BE(start);
/** float4 is returned as the exact float32 value widened to a double. */
const decodeFloat4: Decoder = (buf, start) => buf.readFloatBE(start);
const decodeFloat8: Decoder = (buf, start) => buf.readDoubleBE(start);
const decodeText: Decoder = (buf, start, end) => buf.toString('utf8', start, end);
/** A copy, so that a value kept from a large COPY chunk does not retain the whole chunk. */
const decodeBytea: Decoder = (buf, start, end) => Buffer.from(buf.subarray(start, end));

/** jsonb_send writes a version byte (1) before the JSON text. */
const decodeJsonb: Decoder = (buf, start, end) => {
  if (buf[start] !== 1) throw new Error(`unsupported jsonb binary format version ${buf[start]} (expected 1)`);
  return buf.toString('utf8', start + 1, end);
};

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const decodeUuid: Decoder = (buf, s) =>
  HEX[buf[s]!]! +
  HEX[buf[s + 1]!]! +
  HEX[buf[s + 2]!]! +
  HEX[buf[s + 3]!]! +
  '-' +
  HEX[buf[s + 4]!]! +
  HEX[buf[s + 5]!]! +
  '-' +
  HEX[buf[s + 6]!]! +
  HEX[buf[s + 7]!]! +
  '-' +
  HEX[buf[s + 8]!]! +
  HEX[buf[s + 9]!]! +
  '-' +
  HEX[buf[s + 10]!]! +
  HEX[buf[s + 11]!]! +
  HEX[buf[s + 12]!]! +
  HEX[buf[s + 13]!]! +
  HEX[buf[s + 14]!]! +
  HEX[buf[s + 15]!]!;

// ---------------------------------------------------------------------------------------------
// Arrays (array_send): int32 ndim, int32 has-nulls flag, uint32 element type OID, ndim × (int32 size,
// int32 lower bound), then every element as int32 length (-1 = NULL) + bytes, in row-major order.
// Lower bounds are dropped: the value is nested JS arrays, one level per dimension.

const MAXDIM = 6;

function arrayDecoder(element: Decoder): Decoder {
  return (buf, start, end) => {
    const ndim = buf.readInt32BE(start);
    if (ndim === 0) return [];
    if (ndim < 0 || ndim > MAXDIM) throw new Error(`invalid array dimension count ${ndim} in binary data`);
    const dims: number[] = [];
    for (let d = 0; d < ndim; d++) dims.push(buf.readInt32BE(start + 12 + 8 * d));
    const cursor = { pos: start + 12 + 8 * ndim };
    return arrayLevel(element, buf, end, dims, 0, cursor);
  };
}

/**
 * Dimension `d` of an array whose elements start at `cursor.pos`; a function of its own rather than
 * a closure per value (tsx's name-keeping wrapper would run for each).
 */
function arrayLevel(
  element: Decoder,
  buf: Buffer,
  end: number,
  dims: readonly number[],
  d: number,
  cursor: { pos: number },
): Value[] {
  const n = dims[d]!;
  const out: Value[] = new Array(n);
  for (let i = 0; i < n; i++) {
    if (d + 1 < dims.length) {
      out[i] = arrayLevel(element, buf, end, dims, d + 1, cursor);
      continue;
    }
    if (cursor.pos + 4 > end) throw new Error('truncated array in binary data');
    const len = buf.readInt32BE(cursor.pos);
    cursor.pos += 4;
    if (len < 0) {
      out[i] = null;
    } else {
      if (cursor.pos + len > end) throw new Error('truncated array element in binary data');
      out[i] = element(buf, cursor.pos, cursor.pos + len);
      cursor.pos += len;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const SCALAR: Readonly<Record<string, Decoder>> = {
  bool: decodeBool,
  int2: decodeInt2,
  int4: decodeInt4,
  int8: decodeInt8,
  oid: decodeOid,
  float4: decodeFloat4,
  float8: decodeFloat8,
  numeric: decodeNumeric,
  text: decodeText,
  enum: decodeText,
  uuid: decodeUuid,
  json: decodeText,
  jsonb: decodeJsonb,
  bytea: decodeBytea,
  time: decodeTime,
  timetz: decodeTimetz,
  interval: decodeInterval,
};

/** Decoders with a per-column memo (see {@link DayFormatter}): a new one per column. */
const STATEFUL: Readonly<Record<string, () => Decoder>> = {
  date: dateDecoder,
  timestamp: () => timestampDecoder(''),
  timestamptz: () => timestampDecoder('Z'),
};

/**
 * The decoder of a normalised type name (see `ColumnSchema.type`), or of an array of it. Call it
 * once per column: some decoders keep a small per-column cache.
 */
export function decoderFor(type: string, array: boolean): Decoder {
  const scalar = SCALAR[type] ?? STATEFUL[type]?.();
  if (!scalar) {
    throw new Error(
      `no binary decoder for type '${type}'; expected one of ${[...Object.keys(SCALAR), ...Object.keys(STATEFUL)].join(', ')}`,
    );
  }
  return array ? arrayDecoder(scalar) : scalar;
}
