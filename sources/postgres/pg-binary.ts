/**
 * Decoders of PostgreSQL's binary send format: the fields of `COPY … TO STDOUT (FORMAT binary)` and
 * of pgoutput with `binary 'true'` (both use each type's `typsend` function, so the bytes are the same).
 * Every decoder returns the exact {@link Value} form documented in `framework/types.ts`.
 *
 * Wire formats follow PostgreSQL's `*_send` functions (src/backend/utils/adt/); the text forms follow
 * its `*_out` functions with `DateStyle=ISO`, `TimeZone=UTC` and `IntervalStyle=iso_8601`.
 */
import type { Value } from '../../framework/types.js';

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
export const int32At = (buf: Uint8Array, s: number): number => (buf[s]! << 24) | (buf[s + 1]! << 16) | (buf[s + 2]! << 8) | buf[s + 3]!;
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
  HEX[buf[s]!]! + HEX[buf[s + 1]!]! + HEX[buf[s + 2]!]! + HEX[buf[s + 3]!]! + '-' +
  HEX[buf[s + 4]!]! + HEX[buf[s + 5]!]! + '-' +
  HEX[buf[s + 6]!]! + HEX[buf[s + 7]!]! + '-' +
  HEX[buf[s + 8]!]! + HEX[buf[s + 9]!]! + '-' +
  HEX[buf[s + 10]!]! + HEX[buf[s + 11]!]! + HEX[buf[s + 12]!]! + HEX[buf[s + 13]!]! + HEX[buf[s + 14]!]! + HEX[buf[s + 15]!]!;

// ---------------------------------------------------------------------------------------------
// numeric: int16 ndigits, int16 weight, uint16 sign, int16 dscale, then ndigits base-10000 digits
// (numeric_send). Printed as get_str_from_var does: the integer part, then exactly dscale digits.

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

/** Base-10000 digits as text: unpadded (the leading digit) and padded to 4. */
const DIGITS: string[] = Array.from({ length: 10000 }, (_, i) => String(i));
const DIGITS4: string[] = DIGITS.map((d) => d.padStart(4, '0'));

const decodeNumeric: Decoder = (buf, start) => {
  const ndigits = buf.readInt16BE(start);
  const weight = buf.readInt16BE(start + 2);
  const sign = buf.readUInt16BE(start + 4);
  const dscale = buf.readInt16BE(start + 6);
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) {
    if (sign === NUMERIC_NAN) return 'NaN';
    if (sign === NUMERIC_PINF) return 'Infinity';
    if (sign === NUMERIC_NINF) return '-Infinity';
    throw new Error(`invalid numeric sign 0x${sign.toString(16)} in binary data`);
  }
  const d0 = start + 8;
  // Digit i (0 = most significant) is worth 10000^(weight - i); digits past ndigits are zero.
  let out = sign === NUMERIC_NEG ? '-' : '';
  if (weight < 0 || ndigits === 0) {
    out += '0';
  } else {
    out += DIGITS[(buf[d0]! << 8) | buf[d0 + 1]!];
    for (let i = 1; i <= weight; i++) out += i < ndigits ? DIGITS4[(buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]!] : '0000';
  }
  if (dscale > 0) {
    let frac = '';
    // Fraction digit groups start at index weight + 1 (negative indexes: leading zero groups).
    for (let i = weight + 1; frac.length < dscale; i++) {
      frac += i < 0 || i >= ndigits ? '0000' : DIGITS4[(buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]!];
    }
    out += '.' + (frac.length === dscale ? frac : frac.slice(0, dscale));
  }
  return out;
};

/** ASCII of the special numerics, by sign word. */
const NUMERIC_SPECIAL: Readonly<Record<number, Buffer>> = {
  [NUMERIC_NAN]: Buffer.from('NaN'),
  [NUMERIC_PINF]: Buffer.from('Infinity'),
  [NUMERIC_NINF]: Buffer.from('-Infinity'),
};

/** Most bytes {@link writeNumericText} writes for the numeric at `buf[start]`. */
export function numericTextBound(buf: Buffer, start: number): number {
  const weight = int16At(buf, start + 2);
  const dscale = int16At(buf, start + 6);
  return 12 + Math.max(0, weight + 1) * 4 + dscale;
}

/**
 * Writes the text of the numeric at `buf[start]` (as {@link decodeNumeric} returns it) as ASCII into
 * `out` at `at`, without making a string; returns the end. `out` must have
 * {@link numericTextBound} bytes free.
 */
export function writeNumericText(buf: Buffer, start: number, out: Uint8Array, at: number): number {
  const ndigits = int16At(buf, start);
  const weight = int16At(buf, start + 2);
  const sign = uint16At(buf, start + 4);
  const dscale = int16At(buf, start + 6);
  if (sign !== NUMERIC_POS && sign !== NUMERIC_NEG) {
    const special = NUMERIC_SPECIAL[sign];
    if (!special) throw new Error(`invalid numeric sign 0x${sign.toString(16)} in binary data`);
    out.set(special, at);
    return at + special.length;
  }
  // No closures here: this runs per value, and a bundler's name-keeping wrapper would run per closure.
  const d0 = start + 8;
  if (sign === NUMERIC_NEG) out[at++] = 45; // '-'
  if (weight < 0 || ndigits === 0) out[at++] = 48;
  else {
    // The leading group without its leading zeros, then groups 1…weight padded to four digits.
    const g = (buf[d0]! << 8) | buf[d0 + 1]!;
    if (g >= 1000) out[at++] = 48 + ((g / 1000) | 0);
    if (g >= 100) out[at++] = 48 + (((g / 100) | 0) % 10);
    if (g >= 10) out[at++] = 48 + (((g / 10) | 0) % 10);
    out[at++] = 48 + (g % 10);
    for (let i = 1; i <= weight; i++) at = writeGroup(i < ndigits ? (buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]! : 0, out, at);
  }
  if (dscale > 0) {
    out[at++] = 46; // '.'
    const end = at + dscale;
    // Fraction digit groups start at index weight + 1 (negative indexes: leading zero groups).
    for (let i = weight + 1; at < end; i++) at = writeGroup(i < 0 || i >= ndigits ? 0 : (buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]!, out, at);
    at = end;
  }
  return at;
}

/** Writes a base-10000 digit as four ASCII digits. */
function writeGroup(g: number, out: Uint8Array, at: number): number {
  out[at] = 48 + ((g / 1000) | 0);
  out[at + 1] = 48 + (((g / 100) | 0) % 10);
  out[at + 2] = 48 + (((g / 10) | 0) % 10);
  out[at + 3] = 48 + (g % 10);
  return at + 4;
}

// ---------------------------------------------------------------------------------------------
// Dates and times. PostgreSQL counts from 2000-01-01 (Julian day 2451545); integer arithmetic only.

const POSTGRES_EPOCH_JDATE = 2451545;
const USECS_PER_DAY = 86_400_000_000;
const USECS_PER_HOUR = 3_600_000_000;
const USECS_PER_MINUTE = 60_000_000;
const USECS_PER_SEC = 1_000_000;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

const PAD2: string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + i);
const PAD3: string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
const pad2 = (n: number): string => (n < 100 ? PAD2[n]! : String(n));

/**
 * PostgreSQL's j2date: Julian day number → proleptic Gregorian `YYYY-MM-DD` (at least 4 year digits)
 * and whether the year is BC (astronomical year ≤ 0, printed as 1 - year).
 */
function julianToDate(jd: number): { date: string; bc: boolean } {
  let julian = jd + 32044;
  let quad = Math.floor(julian / 146097);
  const extra = (julian - quad * 146097) * 4 + 3;
  julian += 60 + quad * 3 + Math.floor(extra / 146097);
  quad = Math.floor(julian / 1461);
  julian -= quad * 1461;
  let y = Math.floor((julian * 4) / 1461);
  julian = (y !== 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
  y += quad * 4 - 4800;
  const q = Math.floor((julian * 2141) / 65536);
  const md = '-' + PAD2[((q + 10) % 12) + 1] + '-' + PAD2[julian - Math.floor((7834 * q) / 256)];
  const year = y > 0 ? y : 1 - y;
  return { date: String(year).padStart(4, '0') + md, bc: y <= 0 };
}

/**
 * Formats days counted from 2000-01-01 as `YYYY-MM-DD` (at least 4 year digits, as PostgreSQL prints)
 * plus `suffix`, then ` BC` for BC years. Remembers the last day: timestamps of one column are often
 * close together, and the calendar arithmetic is most of the cost.
 */
class DayFormatter {
  private lastDay = NaN;
  private date = '';
  private bc = false;

  format(day: number, suffix: string): string {
    if (day !== this.lastDay) {
      ({ date: this.date, bc: this.bc } = julianToDate(day + POSTGRES_EPOCH_JDATE));
      this.lastDay = day;
    }
    return this.bc ? this.date + suffix + ' BC' : this.date + suffix;
  }
}

/** date: int32 days since 2000-01-01, int32 max/min for ±infinity. */
function dateDecoder(): Decoder {
  const days = new DayFormatter();
  return (buf, start) => {
    const day = buf.readInt32BE(start);
    if (day === INT32_MAX) return 'infinity';
    if (day === INT32_MIN) return '-infinity';
    return days.format(day, '');
  };
}

/** `HH:MM:SS.ffffff` for microseconds since midnight (0 ≤ us ≤ 24h). */
function formatTimeOfDay(us: number): string {
  const secs = Math.floor(us / USECS_PER_SEC);
  const frac = us - secs * USECS_PER_SEC;
  const h = (secs / 3600) | 0;
  const rest = secs - h * 3600;
  const m = (rest / 60) | 0;
  return PAD2[h] + ':' + PAD2[m] + ':' + PAD2[rest - m * 60] + (frac === 0 ? '.000000' : '.' + PAD3[(frac / 1000) | 0] + PAD3[frac % 1000]);
}

const TWO_32 = 4294967296;
/** |hi| below this means hi * 2^32 + lo is below 2^53: exact as a double. */
const SAFE_HI = 0x200000;

const isInt64Max = (buf: Buffer, s: number) => buf.readInt32BE(s) === INT32_MAX && buf.readUInt32BE(s + 4) === 0xffffffff;
const isInt64Min = (buf: Buffer, s: number) => buf.readInt32BE(s) === INT32_MIN && buf.readUInt32BE(s + 4) === 0;

/**
 * timestamp and timestamptz: int64 µs since 2000-01-01 00:00 (UTC for timestamptz), int64 max/min
 * for ±infinity. `YYYY-MM-DDTHH:MM:SS.ffffff` + `zone`, BC years as `… BC` like PostgreSQL's
 * `0044-03-15 12:00:00 BC` (timestamptz: `…Z BC`, where PostgreSQL prints `…+00 BC`).
 */
function timestampDecoder(zone: string): Decoder {
  const days = new DayFormatter();
  return (buf, start) => {
    const hi = buf.readInt32BE(start);
    let day: number;
    let us: number;
    if (hi < SAFE_HI && hi >= -SAFE_HI) {
      const t = hi * TWO_32 + buf.readUInt32BE(start + 4);
      day = Math.floor(t / USECS_PER_DAY);
      us = t - day * USECS_PER_DAY;
      // t / USECS_PER_DAY is rounded; correct an off-by-one next to a day boundary.
      if (us < 0) {
        day--;
        us += USECS_PER_DAY;
      } else if (us >= USECS_PER_DAY) {
        day++;
        us -= USECS_PER_DAY;
      }
    } else {
      if (isInt64Max(buf, start)) return 'infinity';
      if (isInt64Min(buf, start)) return '-infinity';
      const t = buf.readBigInt64BE(start);
      const perDay = BigInt(USECS_PER_DAY);
      let d = t / perDay;
      if (t - d * perDay < 0n) d -= 1n;
      day = Number(d);
      us = Number(t - d * perDay);
    }
    return days.format(day, 'T' + formatTimeOfDay(us) + zone);
  };
}

/** Microseconds since midnight as int64; always below 2^53. */
const readSafeInt64 = (buf: Buffer, start: number): number => buf.readInt32BE(start) * TWO_32 + buf.readUInt32BE(start + 4);

const decodeTime: Decoder = (buf, start) => formatTimeOfDay(readSafeInt64(buf, start));

/** timetz_send: int64 µs, then the zone as int32 seconds WEST of UTC (so +05:30 is sent as -19800). */
const decodeTimetz: Decoder = (buf, start) => {
  const zone = buf.readInt32BE(start + 8);
  const abs = Math.abs(zone);
  const h = Math.floor(abs / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const s = abs % 60;
  // EncodeTimezone: '+' when the zone is at or east of UTC.
  const offset = (zone <= 0 ? '+' : '-') + pad2(h) + ':' + PAD2[m] + (s !== 0 ? ':' + PAD2[s] : '');
  return formatTimeOfDay(readSafeInt64(buf, start)) + offset;
};

/** Truncating (C-style) division of safe integers, exact despite the rounded float quotient. */
function tdiv(a: number, b: number): number {
  let q = Math.trunc(a / b);
  const r = a - q * b;
  if (a >= 0) {
    if (r < 0) q--;
    else if (r >= b) q++;
  } else if (r > 0) q++;
  else if (r <= -b) q--;
  return q;
}

/** `%d%c` of AddISO8601IntPart; nothing for zero. */
const isoPart = (n: number, unit: string): string => (n === 0 ? '' : String(n) + unit);

/**
 * interval_send: int64 µs, int32 days, int32 months. Printed as EncodeInterval does with
 * IntervalStyle=iso_8601: interval2itm's truncating split, each nonzero part with its own sign.
 */
const decodeInterval: Decoder = (buf, start) => {
  const days = buf.readInt32BE(start + 8);
  const months = buf.readInt32BE(start + 12);
  // PostgreSQL 17 infinite intervals: every field at its maximum (minimum).
  if (months === INT32_MAX && days === INT32_MAX && isInt64Max(buf, start)) return 'infinity';
  if (months === INT32_MIN && days === INT32_MIN && isInt64Min(buf, start)) return '-infinity';
  let hour: number, min: number, sec: number, usec: number;
  const hi = buf.readInt32BE(start);
  if (hi < SAFE_HI && hi >= -SAFE_HI) {
    let t = hi * TWO_32 + buf.readUInt32BE(start + 4);
    hour = tdiv(t, USECS_PER_HOUR);
    t -= hour * USECS_PER_HOUR;
    min = Math.trunc(t / USECS_PER_MINUTE);
    t -= min * USECS_PER_MINUTE;
    sec = Math.trunc(t / USECS_PER_SEC);
    usec = t - sec * USECS_PER_SEC;
  } else {
    let t = buf.readBigInt64BE(start);
    const h = t / BigInt(USECS_PER_HOUR);
    t -= h * BigInt(USECS_PER_HOUR);
    hour = Number(h);
    const rest = Number(t);
    min = Math.trunc(rest / USECS_PER_MINUTE);
    sec = Math.trunc((rest - min * USECS_PER_MINUTE) / USECS_PER_SEC);
    usec = rest - min * USECS_PER_MINUTE - sec * USECS_PER_SEC;
  }
  const year = Math.trunc(months / 12);
  const mon = months - year * 12;
  if (year === 0 && mon === 0 && days === 0 && hour === 0 && min === 0 && sec === 0 && usec === 0) return 'PT0S';
  let out = 'P' + isoPart(year, 'Y') + isoPart(mon, 'M') + isoPart(days, 'D');
  if (hour !== 0 || min !== 0 || sec !== 0 || usec !== 0) out += 'T';
  out += isoPart(hour, 'H') + isoPart(min, 'M');
  if (sec !== 0 || usec !== 0) {
    // AppendSeconds: one sign for seconds and fraction, fraction without trailing zeros.
    out += (sec < 0 || usec < 0 ? '-' : '') + String(Math.abs(sec));
    if (usec !== 0) out += '.' + String(Math.abs(usec)).padStart(6, '0').replace(/0+$/, '');
    out += 'S';
  }
  return out;
};

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
function arrayLevel(element: Decoder, buf: Buffer, end: number, dims: readonly number[], d: number, cursor: { pos: number }): Value[] {
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
    throw new Error(`no binary decoder for type '${type}'; expected one of ${[...Object.keys(SCALAR), ...Object.keys(STATEFUL)].join(', ')}`);
  }
  return array ? arrayDecoder(scalar) : scalar;
}

// ---------------------------------------------------------------------------------------------
// Type OIDs

/** How a type OID decodes: the normalised element type, and whether the column is an array of it. */
export interface PgTypeInfo {
  readonly type: string;
  readonly array: boolean;
}

/** Builtin type OIDs (pg_type.dat): [scalar oid, array oid, normalised type]. */
const BUILTIN: readonly (readonly [number, number, string])[] = [
  [16, 1000, 'bool'],
  [17, 1001, 'bytea'],
  [19, 1003, 'text'], // name
  [20, 1016, 'int8'],
  [21, 1005, 'int2'],
  [23, 1007, 'int4'],
  [25, 1009, 'text'],
  [26, 1028, 'oid'],
  [114, 199, 'json'],
  [700, 1021, 'float4'],
  [701, 1022, 'float8'],
  [1042, 1014, 'text'], // bpchar: sent with its blank padding
  [1043, 1015, 'text'], // varchar
  [1082, 1182, 'date'],
  [1083, 1183, 'time'],
  [1114, 1115, 'timestamp'],
  [1184, 1185, 'timestamptz'],
  [1186, 1187, 'interval'],
  [1266, 1270, 'timetz'],
  [1700, 1231, 'numeric'],
  [2950, 2951, 'uuid'],
  [3802, 3807, 'jsonb'],
];

const BUILTIN_TYPES = new Map<number, PgTypeInfo>();
for (const [oid, arrayOid, type] of BUILTIN) {
  BUILTIN_TYPES.set(oid, Object.freeze({ type, array: false }));
  BUILTIN_TYPES.set(arrayOid, Object.freeze({ type, array: true }));
}

/** Send functions whose binary form is plain text (e.g. citext, which reuses textsend). */
const TEXT_SEND = new Set(['textsend', 'varcharsend', 'bpcharsend', 'namesend']);

/**
 * Runs one catalog query; `(sql, params) => client.query(sql, params)` with a node-postgres client
 * or pool fits.
 */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>;

const TYPE_SQL =
  'SELECT t.typtype, t.typcategory, t.typbasetype::int8 AS typbasetype, t.typelem::int8 AS typelem, ' +
  't.typsend::text AS typsend, format_type(t.oid, NULL) AS name FROM pg_catalog.pg_type t WHERE t.oid = $1';

const KIND: Readonly<Record<string, string>> = { c: 'a composite type', r: 'a range type', m: 'a multirange type', p: 'a pseudo-type' };

/**
 * Maps type OIDs to how featureflow decodes them: builtin OIDs from a static table, anything else
 * (enums, domains, arrays of those, text-like extension types) from `pg_type`, cached per resolver.
 */
export class PgTypeResolver {
  private readonly cache = new Map<number, PgTypeInfo>();

  /** The builtin or already resolved entry of `oid`, or undefined. */
  resolveSync(oid: number): PgTypeInfo | undefined {
    return BUILTIN_TYPES.get(oid) ?? this.cache.get(oid);
  }

  /**
   * Resolves `oid`, asking the catalog for types outside the builtin table.
   * @throws Error naming the type when featureflow cannot decode it.
   */
  async resolve(oid: number, query: CatalogQuery): Promise<PgTypeInfo> {
    const known = this.resolveSync(oid);
    if (known) return known;
    const info = await this.lookup(oid, query, 0);
    this.cache.set(oid, info);
    return info;
  }

  private async lookup(oid: number, query: CatalogQuery, depth: number): Promise<PgTypeInfo> {
    const known = this.resolveSync(oid);
    if (known) return known;
    if (depth > 16) throw new Error(`type oid ${oid}: domain or array nesting too deep to resolve`);
    const { rows } = await query(TYPE_SQL, [oid]);
    const row = rows[0];
    if (!row) throw new Error(`type oid ${oid} does not exist in pg_type; was the type dropped while it was being captured?`);
    const typtype = String(row.typtype);
    const name = String(row.name);
    let info: PgTypeInfo;
    if (typtype === 'e') {
      info = { type: 'enum', array: false };
    } else if (typtype === 'd') {
      // A domain is sent in its base type's binary format.
      info = await this.lookup(Number(row.typbasetype), query, depth + 1);
    } else if (typtype === 'b' && row.typcategory === 'A' && Number(row.typelem) !== 0) {
      const element = await this.lookup(Number(row.typelem), query, depth + 1);
      if (element.array) throw unsupported(name, oid, 'an array of arrays');
      info = { type: element.type, array: true };
    } else if (typtype === 'b' && TEXT_SEND.has(String(row.typsend))) {
      info = { type: 'text', array: false };
    } else {
      throw unsupported(name, oid, KIND[typtype]);
    }
    info = Object.freeze(info);
    this.cache.set(oid, info);
    return info;
  }
}

function unsupported(name: string, oid: number, kind: string | undefined): Error {
  return new Error(
    `column type ${name} (oid ${oid})${kind ? `, ${kind},` : ''} is not supported by featureflow; ` +
      `cast the column to a supported type (text, numeric, jsonb, …) in a view, or leave the column out of the capture`,
  );
}
