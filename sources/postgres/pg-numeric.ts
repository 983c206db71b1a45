import { int16At, uint16At, type Decoder } from './pg-binary.js';

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

export const decodeNumeric: Decoder = (buf, start) => {
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
    for (let i = 1; i <= weight; i++)
      out += i < ndigits ? DIGITS4[(buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]!] : '0000';
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
    for (let i = 1; i <= weight; i++)
      at = writeGroup(i < ndigits ? (buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]! : 0, out, at);
  }
  if (dscale > 0) {
    out[at++] = 46; // '.'
    const end = at + dscale;
    // Fraction digit groups start at index weight + 1 (negative indexes: leading zero groups).
    for (let i = weight + 1; at < end; i++)
      at = writeGroup(i < 0 || i >= ndigits ? 0 : (buf[d0 + 2 * i]! << 8) | buf[d0 + 2 * i + 1]!, out, at);
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
