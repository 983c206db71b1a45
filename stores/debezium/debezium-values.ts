import type { ColumnSchema, Value } from '../../framework/types.js';

/**
 * PostgreSQL values as Debezium's PostgreSQL connector writes them with its defaults
 * (`decimal.handling.mode=precise`, `time.precision.mode=adaptive`, `interval.handling.mode=numeric`,
 * `binary.handling.mode=bytes`), through Kafka Connect's JsonConverter: the Connect schema of a
 * column, and a value in the JSON form the converter gives it.
 */

/** A Kafka Connect schema as JsonConverter writes it. */
export interface ConnectSchema {
  type: string;
  optional: boolean;
  name?: string;
  version?: number;
  parameters?: Record<string, string>;
  doc?: string;
  field?: string;
  fields?: ConnectSchema[];
  items?: ConnectSchema;
  default?: unknown;
}

/** A JSON value whose int64s are bigints (written as exact JSON numbers by {@link toJson}). */
export type Json = null | boolean | number | bigint | string | Json[] | { [key: string]: Json };

/** A numeric column's precision and scale, from its type modifier (`((p << 16) | s) + 4`), or null when unconstrained. */
function numericModifier(column: ColumnSchema): { precision: number; scale: number } | null {
  const m = column.typeModifier;
  if (m === undefined || m < 4) return null;
  return { precision: ((m - 4) >> 16) & 0xffff, scale: (m - 4) & 0xffff };
}

/** A timestamp's or time's fractional digits (its type modifier), 6 without one. */
function fractionDigits(column: ColumnSchema): number {
  return column.typeModifier === undefined ? 6 : column.typeModifier;
}

/** The Connect schema of one element of a column (the column itself when it is no array). */
function elementSchema(column: ColumnSchema): ConnectSchema {
  const s = (type: string, name?: string, extra: Partial<ConnectSchema> = {}): ConnectSchema => ({
    type,
    optional: true,
    ...(name ? { name, version: 1 } : {}),
    ...extra,
  });
  switch (column.type) {
    case 'bool':
      return s('boolean');
    case 'int2':
      return s('int16');
    case 'int4':
      return s('int32');
    case 'int8':
    case 'oid':
      return s('int64');
    case 'float4':
      return s('float');
    case 'float8':
      return s('double');
    case 'numeric': {
      const mod = numericModifier(column);
      if (!mod) {
        return {
          type: 'struct',
          fields: [
            { type: 'int32', optional: false, field: 'scale' },
            { type: 'bytes', optional: false, field: 'value' },
          ],
          optional: true,
          name: 'io.debezium.data.VariableScaleDecimal',
          version: 1,
          doc: 'Variable scaled decimal',
        };
      }
      return s('bytes', 'org.apache.kafka.connect.data.Decimal', {
        parameters: { scale: String(mod.scale), 'connect.decimal.precision': String(mod.precision) },
      });
    }
    case 'bytea':
      return s('bytes');
    case 'uuid':
      return s('string', 'io.debezium.data.Uuid');
    case 'json':
    case 'jsonb':
      return s('string', 'io.debezium.data.Json');
    case 'enum':
      return s('string', 'io.debezium.data.Enum');
    case 'date':
      return s('int32', 'io.debezium.time.Date');
    case 'timestamp':
      return fractionDigits(column) <= 3
        ? s('int64', 'io.debezium.time.Timestamp')
        : s('int64', 'io.debezium.time.MicroTimestamp');
    case 'timestamptz':
      return s('string', 'io.debezium.time.ZonedTimestamp');
    case 'time':
      return fractionDigits(column) <= 3
        ? s('int32', 'io.debezium.time.Time')
        : s('int64', 'io.debezium.time.MicroTime');
    case 'timetz':
      return s('string', 'io.debezium.time.ZonedTime');
    case 'interval':
      return s('int64', 'io.debezium.time.MicroDuration');
    default:
      return s('string');
  }
}

/** The Connect schema of a column (`field` set), optional unless `required`. */
export function columnSchema(column: ColumnSchema, required = false): ConnectSchema {
  const element = elementSchema(column);
  // Debezium's enum arrays alone have required elements.
  const items = column.type === 'enum' ? { ...element, optional: false } : element;
  const schema: ConnectSchema = column.array ? { type: 'array', items, optional: true } : element;
  return { ...schema, optional: !required, field: column.name };
}

/** Days from 1970-01-01 to a proleptic Gregorian date (year 0 is 1 BC), in integer arithmetic (any year PostgreSQL holds). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** Days since 1970-01-01 and seconds into the day of `YYYY-MM-DD[THH:MM:SS…][ BC]` (1 BC is year 0, as in PostgreSQL). */
function civil(text: string): { days: number; seconds: number } {
  const m = /^(\d+)-(\d\d)-(\d\d)(?:T(\d\d):(\d\d):(\d\d))?/.exec(text);
  if (!m) throw new TypeError(`not a date: ${text}`);
  const year = text.endsWith(' BC') ? 1 - Number(m[1]) : Number(m[1]);
  return {
    days: daysFromCivil(year, Number(m[2]), Number(m[3])),
    seconds: Number(m[4] ?? 0) * 3600 + Number(m[5] ?? 0) * 60 + Number(m[6] ?? 0),
  };
}

/** PostgreSQL's `infinity` and `-infinity` dates and timestamps: +1, -1, or 0 for a finite value. */
function infinity(text: string): number {
  return text === 'infinity' ? 1 : text === '-infinity' ? -1 : 0;
}

const INT64_MAX = 9_223_372_036_854_775_807n;

/** The microseconds of a fraction `.ffffff` (or none) in `text`. */
function fractionMicros(text: string): number {
  const m = /\.(\d+)/.exec(text);
  return m ? Number(m[1]!.padEnd(6, '0').slice(0, 6)) : 0;
}

/** µs past midnight of `HH:MM:SS[.ffffff]`. */
function timeMicros(text: string): bigint {
  const [h, mi, s] = text.slice(0, 8).split(':').map(Number) as [number, number, number];
  return BigInt((h * 3600 + mi * 60 + s) * 1_000_000 + fractionMicros(text.slice(8, 15)));
}

/**
 * Java's `BigInteger.toByteArray()`: the shortest big-endian two's complement bytes. A safe integer
 * given as a number is done in number arithmetic: most decimals have at most 15 digits, and going
 * through a bigint's hex text cost a few % of a Debezium-envelope capture's CPU.
 */
export function twosComplement(n: bigint | number): Uint8Array {
  if (typeof n === 'number') return smallTwosComplement(n);
  // A negative n's bytes are those of -n - 1 with every bit flipped (-129: 128 = 00 80, so ff 7f).
  let hex = (n < 0n ? -n - 1n : n).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  // The top bit is the sign: a byte more where the magnitude's top byte has it set.
  if (hex.charCodeAt(0) >= 0x38 /* '8' */) hex = `00${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  if (n < 0n) for (let i = 0; i < bytes.length; i++) bytes[i] = ~bytes[i]! & 0xff;
  return bytes;
}

/** {@link twosComplement} of a safe integer. */
function smallTwosComplement(n: number): Uint8Array {
  if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
  const bytes: number[] = [];
  for (let v = n; ; ) {
    // The low byte of the two's complement, then the rest (exact: v - byte is a multiple of 256).
    const byte = ((v % 256) + 256) % 256;
    bytes.push(byte);
    v = (v - byte) / 256;
    // Done once the rest is the sign alone, carried by this byte's top bit.
    if ((v === 0 && byte < 0x80) || (v === -1 && byte >= 0x80)) break;
  }
  return Uint8Array.from(bytes.reverse());
}

/** Decimal digits that always make a safe integer. */
const SAFE_DIGITS = 15;

/**
 * The unscaled integer and scale of an exact decimal text (`-123.4500` → -1234500, 4), a number when
 * it has at most {@link SAFE_DIGITS} digits; null for NaN and infinities.
 */
export function unscaled(text: string, scale?: number): { value: bigint | number; scale: number } | null {
  if (!/^-?\d+(\.\d+)?$/.test(text)) return null;
  const negative = text.startsWith('-');
  const [int, frac = ''] = (negative ? text.slice(1) : text).split('.') as [string, string?];
  const s = scale ?? frac.length;
  const digits = int + frac.padEnd(s, '0').slice(0, s);
  const value = digits.length <= SAFE_DIGITS ? Number(digits) : BigInt(digits);
  return { value: negative ? -value : value, scale: s };
}

/** Base64 of bytes, read in place (a view over their memory, not a copy). */
const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** Debezium's `MicroDuration` of an ISO 8601 interval (`P1Y2M3DT4H5M6.5S`): a month is 365.25 / 12 days. */
function intervalMicros(text: string): bigint {
  const m = /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?$/.exec(text);
  if (!m) throw new TypeError(`not an interval: ${text}`);
  const [years, months, days, hours, minutes] = [1, 2, 3, 4, 5].map((i) => Number(m[i] ?? 0)) as number[];
  const seconds = m[6] ?? '0';
  const wholeSeconds = Number(seconds.split('.')[0]);
  const micros = (seconds.startsWith('-') ? -1 : 1) * fractionMicros(seconds);
  const monthDays = (years! * 12 + months!) * (365.25 / 12);
  const daysTotal = monthDays + days!;
  const total = (((daysTotal * 24 + hours!) * 60 + minutes!) * 60 + wholeSeconds) * 1_000_000 + micros;
  return BigInt(Math.round(total));
}

/** `HH:MM:SS.ffffff+HH:MM` as UTC, `HH:MM:SS.ffffffZ` (Debezium's ZonedTime). */
function zonedTime(text: string): string {
  const m = /^(\d\d):(\d\d):(\d\d)(\.\d+)?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$/.exec(text);
  if (!m) return text;
  const offset = (m[5] === '-' ? -1 : 1) * (Number(m[6]) * 3600 + Number(m[7] ?? 0) * 60 + Number(m[8] ?? 0));
  let seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) - offset;
  seconds = ((seconds % 86_400) + 86_400) % 86_400;
  const hh = String(Math.floor(seconds / 3600)).padStart(2, '0');
  const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, '0');
  const ss = String(seconds % 60).padStart(2, '0');
  return `${hh}:${mm}:${ss}${trimFraction(m[4] ?? '')}Z`;
}

/** A fraction without trailing zeros (none when zero), as Java's ISO formatters print it. */
function trimFraction(fraction: string): string {
  const trimmed = fraction.replace(/0+$/, '');
  return trimmed === '.' ? '' : trimmed;
}

/** Division rounding towards negative infinity (milliseconds of a time before 1970). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/** JsonConverter (Jackson) writes NaN and the infinities as strings. */
function floatValue(n: number): Json {
  return Number.isFinite(n) ? n : String(n);
}

/** The shortest decimal that reads back as the same float4 (what Java's Float.toString prints). */
function shortestFloat32(n: number): number {
  if (!Number.isFinite(n) || n === 0) return n;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(n.toPrecision(digits));
    if (Math.fround(candidate) === n) return candidate;
  }
  return n;
}

/** One element's value (never an array). */
function elementValue(column: ColumnSchema, value: Exclude<Value, Value[]>): Json {
  if (value === null) return null;
  switch (column.type) {
    case 'numeric': {
      const mod = numericModifier(column);
      // An unconstrained numeric's scale is its value's, without trailing zeros (123.4500 has scale 2).
      const text = String(value);
      const u = unscaled(mod || !text.includes('.') ? text : text.replace(/\.?0+$/, ''), mod?.scale);
      if (!u) return null;
      const bytes = base64(twosComplement(u.value));
      return mod ? bytes : { scale: u.scale, value: bytes };
    }
    case 'bytea':
      return base64(value as Uint8Array);
    case 'oid':
      return BigInt(value as number);
    case 'date': {
      // Infinite dates as the int32 limits (Debezium's own numbers for them are not meaningful).
      const inf = infinity(value as string);
      return inf > 0 ? 2_147_483_647 : inf < 0 ? -2_147_483_648 : civil(value as string).days;
    }
    case 'timestamp': {
      // Infinite timestamps as the int64 limits, as Debezium documents.
      const inf = infinity(value as string);
      if (inf !== 0) return inf > 0 ? INT64_MAX : -INT64_MAX - 1n;
      const text = value as string;
      const { days, seconds } = civil(text);
      const micros = (BigInt(days) * 86_400n + BigInt(seconds)) * 1_000_000n + BigInt(fractionMicros(text.slice(19)));
      return fractionDigits(column) <= 3 ? floorDiv(micros, 1000n) : micros;
    }
    case 'timestamptz': {
      const text = value as string;
      if (infinity(text) !== 0) return text;
      // Debezium prints the column's six fractional digits.
      const fraction = String(fractionMicros(text.slice(19))).padStart(6, '0');
      return `${text.slice(0, 19)}.${fraction}Z${text.endsWith(' BC') ? ' BC' : ''}`;
    }
    case 'time': {
      const micros = timeMicros(value as string);
      return fractionDigits(column) <= 3 ? Number(micros / 1000n) : micros;
    }
    case 'timetz':
      return zonedTime(value as string);
    case 'interval':
      return intervalMicros(value as string);
    case 'float4':
      return floatValue(shortestFloat32(value as number));
    case 'float8':
      return floatValue(value as number);
    default:
      return value as Json;
  }
}

/** A column's value as JsonConverter writes it (arrays element by element). */
export function columnValue(column: ColumnSchema, value: Value): Json {
  if (Array.isArray(value)) return value.map((v) => columnValue(column, v));
  return elementValue(column, value);
}

/**
 * JSON text of `value`, its bigints written as exact numbers (JSON.stringify refuses them); otherwise
 * what JSON.stringify writes (keys in their own order, undefined members left out). Written by hand:
 * a replacer function makes JSON.stringify several times slower on every record.
 */
export function toJson(value: Json): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const v = value[i];
          out += `${i === 0 ? '' : ','}${v === undefined ? 'null' : toJson(v)}`;
        }
        return `${out}]`;
      }
      // Anything else than a plain object (its own toJSON, a typed array) as JSON.stringify writes it.
      if (Object.getPrototypeOf(value) !== Object.prototype) return toJsonSlow(value);
      let out = '{';
      let first = true;
      for (const key of Object.keys(value)) {
        const v = value[key];
        if (v === undefined) continue;
        out += `${first ? '' : ','}${JSON.stringify(key)}:${toJson(v)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      return toJsonSlow(value);
  }
}

function toJsonSlow(value: unknown): string {
  const marked = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `\u0000${v}` : v));
  return marked.replace(/"\\u0000(-?\d+)"/g, '$1');
}
