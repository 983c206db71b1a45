import type { Row } from '../../../framework/types.js';
import { encodeValue, keyPrefix } from '../../../framework/value-json.js';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The change log's key text (its `key` column): the key columns of a row as a JSON object, in key
 * order, so equal keys give equal text. Identity is `entityId`'s (framework/features/entity-key.ts):
 * an int8 within ±2^53 is written as the JSON number an int2 or int4 would be, so widening a key
 * column (`ALTER COLUMN id TYPE int8`) does not change the identity of the rows already in the log.
 */
export function encodeKey(key: Row | null, keyColumns: readonly string[]): string | null {
  if (key === null) return null;
  // Built as text, in key-column order: this runs for every change.
  let out = '{';
  for (let i = 0; i < keyColumns.length; i++) {
    const c = keyColumns[i]!;
    const v = key[c] ?? null;
    out +=
      (i === 0 ? '' : ',') +
      keyPrefix(c) +
      encodeValue(typeof v === 'bigint' && v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v);
  }
  return out + '}';
}
