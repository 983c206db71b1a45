import { formatInterval } from '../../framework/column-values.js';
import type { Decoder } from './pg-binary.js';

// ---------------------------------------------------------------------------------------------
// Dates and times. PostgreSQL counts from 2000-01-01 (Julian day 2451545); integer arithmetic only.

const POSTGRES_EPOCH_JDATE = 2451545;
const USECS_PER_DAY = 86_400_000_000;
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
export function dateDecoder(): Decoder {
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
  return (
    PAD2[h] +
    ':' +
    PAD2[m] +
    ':' +
    PAD2[rest - m * 60] +
    (frac === 0 ? '.000000' : '.' + PAD3[(frac / 1000) | 0] + PAD3[frac % 1000])
  );
}

const TWO_32 = 4294967296;
/** |hi| below this means hi * 2^32 + lo is below 2^53: exact as a double. */
const SAFE_HI = 0x200000;

const isInt64Max = (buf: Buffer, s: number) =>
  buf.readInt32BE(s) === INT32_MAX && buf.readUInt32BE(s + 4) === 0xffffffff;
const isInt64Min = (buf: Buffer, s: number) => buf.readInt32BE(s) === INT32_MIN && buf.readUInt32BE(s + 4) === 0;

/**
 * timestamp and timestamptz: int64 µs since 2000-01-01 00:00 (UTC for timestamptz), int64 max/min
 * for ±infinity. `YYYY-MM-DDTHH:MM:SS.ffffff` + `zone`, BC years as `… BC` like PostgreSQL's
 * `0044-03-15 12:00:00 BC` (timestamptz: `…Z BC`, where PostgreSQL prints `…+00 BC`).
 */
export function timestampDecoder(zone: string): Decoder {
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
const readSafeInt64 = (buf: Buffer, start: number): number =>
  buf.readInt32BE(start) * TWO_32 + buf.readUInt32BE(start + 4);

export const decodeTime: Decoder = (buf, start) => formatTimeOfDay(readSafeInt64(buf, start));

/** timetz_send: int64 µs, then the zone as int32 seconds WEST of UTC (so +05:30 is sent as -19800). */
export const decodeTimetz: Decoder = (buf, start) => {
  const zone = buf.readInt32BE(start + 8);
  const abs = Math.abs(zone);
  const h = Math.floor(abs / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const s = abs % 60;
  // EncodeTimezone: '+' when the zone is at or east of UTC.
  const offset = (zone <= 0 ? '+' : '-') + pad2(h) + ':' + PAD2[m] + (s !== 0 ? ':' + PAD2[s] : '');
  return formatTimeOfDay(readSafeInt64(buf, start)) + offset;
};

/**
 * interval_send: int64 µs, int32 days, int32 months. Printed as EncodeInterval does with
 * IntervalStyle=iso_8601 (formatInterval); PostgreSQL 17's infinite intervals as 'infinity'.
 */
export const decodeInterval: Decoder = (buf, start) => {
  const days = buf.readInt32BE(start + 8);
  const months = buf.readInt32BE(start + 12);
  // PostgreSQL 17 infinite intervals: every field at its maximum (minimum).
  if (months === INT32_MAX && days === INT32_MAX && isInt64Max(buf, start)) return 'infinity';
  if (months === INT32_MIN && days === INT32_MIN && isInt64Min(buf, start)) return '-infinity';
  return formatInterval(months, days, buf.readInt32BE(start), buf.readUInt32BE(start + 4));
};
