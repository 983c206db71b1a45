/**
 * Instants and durations as featureflow reads them: microseconds since the Unix epoch (UTC) as a
 * bigint, so PostgreSQL's microsecond timestamps survive exactly.
 */

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Microseconds since the epoch of an instant: a `Date`, a bigint (already microseconds), or an ISO 8601
 * string such as `2024-05-01T12:00:00.123456Z`, `2024-05-01 14:00:00+02:00` or `2024-05-01` (a string
 * without an offset is UTC). Throws a TypeError naming the input otherwise.
 */
export function toMicros(value: Date | string | bigint): bigint {
  if (typeof value === 'bigint') return value;
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new TypeError('invalid Date');
    return BigInt(ms) * 1000n;
  }
  if (typeof value !== 'string') throw new TypeError(`not an instant: ${typeof value}`);
  const m = ISO.exec(value.trim());
  if (!m)
    throw new TypeError(
      `not an ISO 8601 instant: ${JSON.stringify(value.slice(0, 40))} (expected e.g. 2024-05-01T12:00:00Z)`,
    );
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(ms)) throw new TypeError(`not a valid date: ${JSON.stringify(value)}`);
  let micros = BigInt(ms) * 1000n + BigInt((frac + '000000').slice(0, 6));
  if (zone && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1n : 1n;
    const digits = zone.slice(1).replace(':', '');
    const offsetMinutes = BigInt(Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || '0'));
    micros -= sign * offsetMinutes * 60_000_000n;
  }
  return micros;
}

/** The ISO 8601 form (UTC, microseconds) of an instant in microseconds. */
export function formatMicros(micros: bigint): string {
  const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = micros - ms * 1000n;
  const iso = new Date(Number(ms)).toISOString();
  return iso.slice(0, 23) + rest.toString().padStart(3, '0') + 'Z';
}

const UNITS: Record<string, bigint> = {
  us: 1n,
  ms: 1000n,
  s: 1_000_000n,
  m: 60_000_000n,
  h: 3_600_000_000n,
  d: 86_400_000_000n,
  w: 604_800_000_000n,
};

/**
 * Microseconds of a duration: a number of seconds, or a string of amounts with units `us`, `ms`, `s`,
 * `m`, `h`, `d`, `w` (e.g. `90s`, `1h30m`, `7d`).
 */
export function durationMicros(value: number | string): bigint {
  if (typeof value === 'number') {
    if (!(Number.isFinite(value) && value > 0))
      throw new TypeError(`a duration must be a positive number of seconds, got ${value}`);
    return BigInt(Math.round(value * 1_000_000));
  }
  const parts = [...value.trim().matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d|w)/g)];
  const consumed = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || consumed.replace(/\s/g, '') !== value.replace(/\s/g, '')) {
    throw new TypeError(`not a duration: ${JSON.stringify(value)} (expected e.g. "90s", "1h30m", "7d")`);
  }
  let total = 0;
  for (const [, amount, unit] of parts) total += Number(amount) * Number(UNITS[unit!]);
  if (total <= 0) throw new TypeError(`a duration must be positive, got ${JSON.stringify(value)}`);
  return BigInt(Math.round(total));
}
