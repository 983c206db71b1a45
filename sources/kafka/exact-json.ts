/**
 * JSON as Debezium writes it, parsed without losing int64s: JsonConverter writes int8 values, LSNs and
 * `ts_ns` as plain JSON numbers, and `JSON.parse` rounds those beyond 2^53 to the nearest double.
 * Integer literals too long to be exact doubles (16 digits or more) are read as bigints; every other
 * number as JSON.parse reads it.
 */
export function parseExactJson(text: string): unknown {
  return JSON.parse(markLongIntegers(text), (_key, value: unknown) =>
    typeof value === 'string' && value.charCodeAt(0) === 0 ? BigInt(value.slice(1)) : value,
  );
}

/** `text` with each long integer literal outside strings turned into a string marked by a leading NUL. */
function markLongIntegers(text: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22) {
      // A string: skip to its closing quote (a NUL cannot occur raw inside a JSON string).
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1;
      i++;
    } else if (ch === 0x2d || (ch >= 0x30 && ch <= 0x39)) {
      let end = i + 1;
      while (end < text.length && /[0-9.eE+-]/.test(text[end]!)) end++;
      const literal = text.slice(i, end);
      if (/^-?\d{16,}$/.test(literal)) {
        out += `${text.slice(copied, i)}"\\u0000${literal}"`;
        copied = end;
      }
      i = end;
    } else i++;
  }
  return copied === 0 ? text : out + text.slice(copied);
}
