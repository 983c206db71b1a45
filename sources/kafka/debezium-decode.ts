import type { Value } from '../../framework/types.js';
import type { DecodedColumn } from './debezium-columns.js';

/**
 * Values in the JSON form Debezium's PostgreSQL connector gives them (through JsonConverter) read
 * back as exact featureflow {@link Value}s, by the column's type and the form its values arrive in.
 */

/** Thrown by {@link decodeValue} for a value that does not fit its column's type. */
export class ValueError extends Error {}

/** A column's value from its JSON form (arrays element by element). */
export function decodeValue(column: DecodedColumn, json: unknown): Value {
  if (json === null || json === undefined) return null;
  if (column.schema.array) {
    if (!Array.isArray(json)) throw new ValueError(`expected an array, got ${typeof json}`);
    return json.map((v) => (Array.isArray(v) ? decodeValue(column, v) : decodeElement(column, v)));
  }
  return decodeElement(column, json);
}

function decodeElement(column: DecodedColumn, json: unknown): Value {
  if (json === null || json === undefined) return null;
  const { type } = column.schema;
  const enc = column.encoding;
  switch (type) {
    case 'bool':
      if (typeof json !== 'boolean') throw new ValueError(`expected a boolean, got ${typeof json}`);
      return json;
    case 'int2':
    case 'int4':
      return Number(integer(json));
    case 'int8':
      return integer(json);
    case 'float4':
    case 'float8':
      // JsonConverter writes NaN and the infinities as strings.
      if (typeof json === 'number') return type === 'float4' ? Math.fround(json) : json;
      if (json === 'NaN' || json === 'Infinity' || json === '-Infinity') return Number(json);
      if (typeof json === 'bigint') return Number(json);
      throw new ValueError(`expected a number, got ${JSON.stringify(json)}`);
    case 'numeric':
      return numeric(column, json);
    case 'bytea':
      return bytes(json);
    case 'date':
      if (typeof json === 'string') return json;
      return formatDate(Number(integer(json)));
    case 'timestamp': {
      if (typeof json === 'string') return json.replace(' ', 'T');
      const n = integer(json);
      const micros =
        enc === 'io.debezium.time.Timestamp' || enc === 'org.apache.kafka.connect.data.Timestamp'
          ? n * 1000n
          : enc === 'io.debezium.time.NanoTimestamp'
            ? floorDiv(n, 1000n)
            : n;
      return formatTimestamp(micros);
    }
    case 'timestamptz':
      if (typeof json !== 'string') throw new ValueError(`expected an ISO 8601 string, got ${typeof json}`);
      return zonedTimestamp(json);
    case 'time': {
      if (typeof json === 'string') return json;
      const n = integer(json);
      const micros =
        enc === 'io.debezium.time.Time' || enc === 'org.apache.kafka.connect.data.Time'
          ? n * 1000n
          : enc === 'io.debezium.time.NanoTime'
            ? n / 1000n
            : n;
      return formatTimeOfDay(micros);
    }
    case 'timetz':
      if (typeof json !== 'string') throw new ValueError(`expected a time string, got ${typeof json}`);
      // ZonedTime is the time in UTC, `HH:MM:SS[.f]Z`: the column's own offset is not carried.
      return /Z$/.test(json) ? `${padFraction(json.slice(0, -1))}+00:00` : json;
    case 'interval':
      if (typeof json === 'string') return json;
      return formatMicroDuration(integer(json));
    case 'json':
    case 'jsonb':
      return typeof json === 'string' ? json : JSON.stringify(json, (_k, v) => (typeof v === 'bigint' ? Number(v) : v));
    default:
      if (typeof json === 'string') return json;
      throw new ValueError(`expected a string, got ${typeof json}`);
  }
}

function integer(json: unknown): bigint {
  if (typeof json === 'bigint') return json;
  if (typeof json === 'number' && Number.isInteger(json)) return BigInt(json);
  if (typeof json === 'string' && /^-?\d+$/.test(json)) return BigInt(json);
  throw new ValueError(`expected an integer, got ${JSON.stringify(json)}`);
}

function bytes(json: unknown): Uint8Array {
  if (typeof json !== 'string') throw new ValueError(`expected base64 bytes, got ${typeof json}`);
  return new Uint8Array(Buffer.from(json, 'base64'));
}

/** The integer of Java's `BigInteger.toByteArray()`: big-endian two's complement. */
function fromTwosComplement(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return (b[0]! & 0x80) !== 0 ? v - (1n << BigInt(b.length * 8)) : v;
}

/** The exact decimal text of an unscaled integer and a scale. */
function decimalText(unscaledValue: bigint, scale: number): string {
  const negative = unscaledValue < 0n;
  const digits = (negative ? -unscaledValue : unscaledValue).toString();
  if (scale <= 0) return (negative ? '-' : '') + digits + '0'.repeat(-scale);
  const padded = digits.padStart(scale + 1, '0');
  return `${negative ? '-' : ''}${padded.slice(0, -scale)}.${padded.slice(-scale)}`;
}

/**
 * A numeric: `Decimal` bytes with the column's scale (`decimal.handling.mode=precise`), a
 * `VariableScaleDecimal` struct, a string (`string` mode, exact) or a number (`double` mode: a double's
 * shortest decimal, as exact as Debezium left it).
 */
function numeric(column: DecodedColumn, json: unknown): Value {
  if (typeof json === 'object' && json !== null && 'value' in json) {
    const { scale, value } = json as { scale: unknown; value: unknown };
    return decimalText(fromTwosComplement(bytes(value)), Number(scale));
  }
  if (typeof json === 'number' || typeof json === 'bigint') {
    if (typeof json === 'number' && !Number.isFinite(json)) return String(json);
    return String(json);
  }
  if (typeof json !== 'string') throw new ValueError(`expected a decimal, got ${typeof json}`);
  if (column.encoding === 'org.apache.kafka.connect.data.Decimal' || column.encoding === 'bytes') {
    const m = column.schema.typeModifier;
    if (m === undefined || m < 4)
      throw new ValueError('Decimal bytes without a scale (declare the column as numeric(p,s) in columnTypes)');
    return decimalText(fromTwosComplement(bytes(json)), (m - 4) & 0xffff);
  }
  if (/^-?\d+(\.\d+)?$/.test(json) || json === 'NaN' || json === 'Infinity' || json === '-Infinity') return json;
  // Without schemas, precise Decimal bytes are base64: only a declared scale reads them.
  const m = column.schema.typeModifier;
  if (m !== undefined && m >= 4) return decimalText(fromTwosComplement(bytes(json)), (m - 4) & 0xffff);
  throw new ValueError(`expected a decimal, got ${JSON.stringify(json)}`);
}

const pad = (n: number | bigint, width = 2) => String(n).padStart(width, '0');

/** Year, month, day of days since 1970-01-01 (proleptic Gregorian; year 0 is 1 BC). */
function civilFromDays(days: number): [number, number, number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

/** `YYYY-MM-DD` (` BC` for years before 1). */
function formatDate(days: number): string {
  const [y, m, d] = civilFromDays(days);
  return y > 0 ? `${pad(y, 4)}-${pad(m)}-${pad(d)}` : `${pad(1 - y, 4)}-${pad(m)}-${pad(d)} BC`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

const DAY = 86_400_000_000n;

/** `HH:MM:SS.ffffff` of µs past midnight (`24:00:00.000000` for a whole day). */
function formatTimeOfDay(micros: bigint): string {
  const s = micros / 1_000_000n;
  return `${pad(s / 3600n)}:${pad((s / 60n) % 60n)}:${pad(s % 60n)}.${pad(micros % 1_000_000n, 6)}`;
}

/** `YYYY-MM-DDTHH:MM:SS.ffffff` of µs since the epoch (` BC` for years before 1). */
function formatTimestamp(micros: bigint): string {
  const days = floorDiv(micros, DAY);
  const date = formatDate(Number(days));
  const time = formatTimeOfDay(micros - days * DAY);
  return date.endsWith(' BC') ? `${date.slice(0, -3)}T${time} BC` : `${date}T${time}`;
}

/** A fraction padded to six digits (`12:00:00` → `12:00:00.000000`). */
function padFraction(text: string): string {
  const m = /^(.*\d\d:\d\d:\d\d)(?:\.(\d+))?$/.exec(text);
  return m ? `${m[1]}.${(m[2] ?? '').padEnd(6, '0').slice(0, 6)}` : text;
}

/** ZonedTimestamp (`2024-01-02T03:04:05.123456Z`, always UTC) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
function zonedTimestamp(text: string): string {
  const m = /^(.*?)Z( BC)?$/.exec(text);
  if (!m) return text;
  return `${padFraction(m[1]!)}Z${m[2] ?? ''}`;
}

/** MicroDuration µs as ISO 8601 hours, minutes and seconds (Debezium folds months and days into µs). */
function formatMicroDuration(micros: bigint): string {
  if (micros === 0n) return 'PT0S';
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const sign = negative ? '-' : '';
  const hours = abs / 3_600_000_000n;
  const minutes = (abs / 60_000_000n) % 60n;
  const seconds = (abs / 1_000_000n) % 60n;
  const fraction = abs % 1_000_000n;
  let out = 'PT';
  if (hours !== 0n) out += `${sign}${hours}H`;
  if (minutes !== 0n) out += `${sign}${minutes}M`;
  if (seconds !== 0n || fraction !== 0n) {
    out += `${sign}${seconds}`;
    if (fraction !== 0n) out += `.${pad(fraction, 6).replace(/0+$/, '')}`;
    out += 'S';
  }
  return out;
}
