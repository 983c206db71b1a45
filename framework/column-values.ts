/**
 * Reading values back out of column-wise rows ({@link ColumnRows}): the exact `Value` of a field, as
 * the source's own decoder gives it (types.ts), so that a change read from a batch's columns equals
 * the change the source decoded. Only the framework and the stores read this layout; the source only
 * writes it.
 */
import {
  TIMETZ_OFFSET_MAX,
  type ColumnRows,
  type FixedColumn,
  type ListColumn,
  type RowColumn,
  type TextColumn,
} from './column-rows.js';
import type { ColumnSchema, Row, Value } from './types.js';
import { valueDecoder } from './value-json.js';

const MS_PER_DAY = 86_400_000;
const utf8 = new TextDecoder();
const PAD2: string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + i);
const TWO_32 = 4294967296;
const US_PER_SECOND = 1_000_000;
const US_PER_MINUTE = 60_000_000;
const US_PER_HOUR = 3_600_000_000;

/** `YYYY-MM-DD` of days since 1970-01-01, for the years 1000–9999 (others are overrides). */
function formatDay(days: number): string {
  const d = new Date(days * MS_PER_DAY);
  return `${d.getUTCFullYear()}-${PAD2[d.getUTCMonth() + 1]}-${PAD2[d.getUTCDate()]}`;
}

/** `YYYY-MM-DDTHH:MM:SS.ffffff` of µs since 1970-01-01 00:00, for the years 1000–9999. */
function formatMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const d = new Date(ms);
  const frac = us - Math.floor(ms / 1000) * 1_000_000;
  return (
    `${d.getUTCFullYear()}-${PAD2[d.getUTCMonth() + 1]}-${PAD2[d.getUTCDate()]}T` +
    `${PAD2[d.getUTCHours()]}:${PAD2[d.getUTCMinutes()]}:${PAD2[d.getUTCSeconds()]}.${String(frac).padStart(6, '0')}`
  );
}

/** `HH:MM:SS.ffffff` of µs since midnight (0 ≤ us ≤ 24 h). */
function formatTime(us: number): string {
  const secs = Math.floor(us / US_PER_SECOND);
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs - h * 3600) / 60);
  return `${PAD2[h]}:${PAD2[m]}:${PAD2[secs - h * 3600 - m * 60]}.${String(us - secs * US_PER_SECOND).padStart(6, '0')}`;
}

/** `HH:MM:SS.ffffff+HH:MM` (`:SS` when the offset has seconds) of a packed `timetz`. */
function formatTimetz(lo: number, hi: number): string {
  const us = hi * 256 + (lo >>> 24);
  const east = TIMETZ_OFFSET_MAX - (lo & 0xffffff);
  const abs = Math.abs(east);
  const s = abs % 60;
  const zone = `${east >= 0 ? '+' : '-'}${PAD2[Math.floor(abs / 3600)]}:${PAD2[Math.floor((abs % 3600) / 60)]}`;
  return formatTime(us) + zone + (s !== 0 ? `:${PAD2[s]}` : '');
}

/** `%d%c` of PostgreSQL's AddISO8601IntPart; nothing for zero. */
const isoPart = (n: number, unit: string): string => (n === 0 ? '' : String(n) + unit);

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

/**
 * An interval in ISO 8601 as PostgreSQL prints it with `IntervalStyle=iso_8601` (EncodeInterval):
 * a truncating split of months into years and of µs into hours, minutes, seconds, each nonzero part
 * with its own sign, the seconds' fraction without trailing zeros. The µs are `hi · 2^32 + lo` (`lo`
 * unsigned). Infinite intervals are the caller's.
 */
export function formatInterval(months: number, days: number, hi: number, lo: number): string {
  let hour: number;
  let rest: number;
  if (hi < 0x200000 && hi >= -0x200000) {
    const us = hi * TWO_32 + lo;
    hour = tdiv(us, US_PER_HOUR);
    rest = us - hour * US_PER_HOUR;
  } else {
    const us = BigInt(hi) * BigInt(TWO_32) + BigInt(lo);
    const h = us / BigInt(US_PER_HOUR);
    hour = Number(h);
    rest = Number(us - h * BigInt(US_PER_HOUR));
  }
  const min = Math.trunc(rest / US_PER_MINUTE);
  const sec = Math.trunc((rest - min * US_PER_MINUTE) / US_PER_SECOND);
  const usec = rest - min * US_PER_MINUTE - sec * US_PER_SECOND;
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
}

/** Reads row `i` of one column as its exact Value. */
export type ColumnReader = (i: number) => Value;

function fixedReader(column: ColumnSchema, data: FixedColumn): ColumnReader {
  const view = new DataView(data.data.buffer, data.data.byteOffset, data.data.byteLength);
  const { nulls, overrides } = data;
  const decodeOverride = valueDecoder(column);
  let read: (i: number) => Value;
  switch (data.kind) {
    case 'int16':
      read = (i) => view.getInt16(i * 2, true);
      break;
    case 'int32':
      read = (i) => view.getInt32(i * 4, true);
      break;
    case 'uint32':
      read = (i) => view.getUint32(i * 4, true);
      break;
    case 'int64':
      read = (i) => view.getBigInt64(i * 8, true);
      break;
    case 'float32':
      read = (i) => view.getFloat32(i * 4, true);
      break;
    case 'float64':
      read = (i) => view.getFloat64(i * 8, true);
      break;
    case 'bool':
      read = (i) => view.getUint8(i) !== 0;
      break;
    case 'date':
      read = (i) => formatDay(view.getInt32(i * 4, true));
      break;
    case 'timestamp':
      read = (i) => formatMicros(Number(view.getBigInt64(i * 8, true)));
      break;
    case 'timestamptz':
      read = (i) => `${formatMicros(Number(view.getBigInt64(i * 8, true)))}Z`;
      break;
    case 'time':
      read = (i) => formatTime(view.getUint32(i * 8 + 4, true) * TWO_32 + view.getUint32(i * 8, true));
      break;
    case 'timetz':
      read = (i) => formatTimetz(view.getUint32(i * 8, true), view.getUint32(i * 8 + 4, true));
      break;
    case 'interval':
      read = (i) =>
        formatInterval(
          view.getInt32(i * 16, true),
          view.getInt32(i * 16 + 4, true),
          view.getInt32(i * 16 + 12, true),
          view.getUint32(i * 16 + 8, true),
        );
      break;
  }
  return (i) => {
    if (nulls?.[i]) return null;
    const override = overrides?.get(i);
    return override === undefined ? read(i) : decodeOverride(JSON.parse(override));
  };
}

function textReader(data: TextColumn): ColumnReader {
  const { bytes, offsets, nulls } = data;
  if (data.kind === 'bytes')
    // A copy, so that a value kept does not keep the whole batch's bytes.
    return (i) => (nulls?.[i] ? null : Buffer.from(bytes.subarray(offsets[i]!, offsets[i + 1]!)));
  return (i) => (nulls?.[i] ? null : utf8.decode(bytes.subarray(offsets[i]!, offsets[i + 1]!)));
}

function listReader(column: ColumnSchema, data: ListColumn): ColumnReader {
  const element = columnReader({ ...column, array: false }, data.elements);
  const decodeOverride = valueDecoder(column);
  const { offsets, nulls, overrides } = data;
  return (i) => {
    if (nulls?.[i]) return null;
    const override = overrides?.get(i);
    if (override !== undefined) return decodeOverride(JSON.parse(override));
    const from = offsets[i]!;
    const out: Value[] = new Array(offsets[i + 1]! - from);
    for (let k = 0; k < out.length; k++) out[k] = element(from + k);
    return out;
  };
}

/** A reader of one column of column-wise rows. */
export function columnReader(column: ColumnSchema, data: RowColumn): ColumnReader {
  // text, json, plain-text and bytes: the layouts of bytes and offsets.
  if ('bytes' in data) return textReader(data);
  if (data.kind === 'list') return listReader(column, data);
  if (data.kind === 'value') {
    const decode = valueDecoder(column);
    const { values } = data;
    return (i) => {
      const json = values[i];
      return json === null || json === undefined ? null : decode(JSON.parse(json));
    };
  }
  return fixedReader(column, data as FixedColumn);
}

/** Reads whole rows (column name → Value) of column-wise rows laid out for `columns`. */
export function rowReader(columns: readonly ColumnSchema[], rows: ColumnRows): (i: number) => Row {
  const readers = columns.map((c, k) => columnReader(c, rows.columns[k]!));
  const names = columns.map((c) => c.name);
  return (i) => {
    const row: Row = {};
    for (let k = 0; k < names.length; k++) row[names[k]!] = readers[k]!(i);
    return row;
  };
}
