import type { Value } from '../types.js';
import { encodeValue } from '../value-json.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The identity of an entity key as text: equal keys give equal text whatever the integer width
 * (an int4 `1` and an int8 `1n` are the same entity; widening a key column must not change
 * identities), and different keys give different text. Every component that groups or looks up
 * entities (change log, history writer, online stores, the bus) uses this one definition.
 */
export function entityId(key: readonly Value[]): string {
  // The common key, one integer column: its decimal text is what encodeValue writes (runs per row).
  if (key.length === 1) {
    const v = key[0];
    if (typeof v === 'number' && Number.isSafeInteger(v) && !Object.is(v, -0)) return String(v);
    if (typeof v === 'bigint' && v <= MAX_SAFE && v >= -MAX_SAFE) return String(v);
  }
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const v = key[i]!;
    out += (i === 0 ? '' : ',') + encodeValue(typeof v === 'bigint' && v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v);
  }
  return out;
}
