import { toMicros } from './instant.js';
import { typeName, type FeatureType } from './feature-types.js';

/**
 * A value in the form the offline store writes: number (float32, float64, int32), bigint (int64),
 * boolean, string (text), bigint microseconds (timestamp), a flat typed array (tensor), or null.
 */
export type StoredFeatureValue = number | bigint | boolean | string | Float32Array | Float64Array | Int32Array | null;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value))
    return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<unknown>).length}`;
  if (value instanceof Date) return 'a Date';
  return `a ${typeof value}`;
}

function wrong(type: FeatureType, value: unknown, expected: string): TypeError {
  return new TypeError(`got ${describe(value)} for a ${typeName(type)} feature; return ${expected}`);
}

/**
 * Checks a value a transform returned against the feature's type and converts it to its stored form.
 * Throws a TypeError saying what was returned and what to return instead.
 */
export function toStoredValue(type: FeatureType, value: unknown): StoredFeatureValue {
  if (value === null) return null;
  if (type.kind === 'tensor') return toTensor(type, value);
  switch (type.dtype) {
    case 'float32':
    case 'float64':
      if (typeof value === 'number') return value;
      throw wrong(type, value, 'a number');
    case 'int32':
      if (typeof value === 'number' && Number.isInteger(value) && value >= -2147483648 && value <= 2147483647)
        return value;
      throw wrong(type, value, 'an integer number within 32 bits');
    case 'int64':
      if (typeof value === 'bigint') {
        if (value >= -(2n ** 63n) && value < 2n ** 63n) return value;
      } else if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
      throw wrong(type, value, 'a bigint (or a safe-integer number) within 64 bits');
    case 'bool':
      if (typeof value === 'boolean') return value;
      throw wrong(type, value, 'a boolean');
    case 'text':
      if (typeof value === 'string') return value;
      throw wrong(type, value, 'a string');
    case 'timestamp':
      if (value instanceof Date || typeof value === 'string') {
        try {
          return toMicros(value);
        } catch (error) {
          throw new TypeError(
            `${(error as Error).message} for a timestamp feature; return a Date or an ISO 8601 string`,
          );
        }
      }
      throw wrong(type, value, 'a Date or an ISO 8601 string');
  }
}

function toTensor(
  type: Extract<FeatureType, { kind: 'tensor' }>,
  value: unknown,
): Float32Array | Float64Array | Int32Array {
  const expected = `${type.size} numbers (shape [${type.shape.join(', ')}], row-major) as a typed array or number array`;
  if (!(Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView))))
    throw wrong(type, value, expected);
  let items = value as ArrayLike<unknown>;
  if (Array.isArray(value) && value.some(Array.isArray)) items = (value as unknown[]).flat(Infinity);
  if (items.length !== type.size) throw wrong(type, value, expected);
  const Out = type.dtype === 'float32' ? Float32Array : type.dtype === 'float64' ? Float64Array : Int32Array;
  // Copied: a transform may reuse one buffer for every row.
  if (items instanceof Out) return items.slice();
  const out = new Out(type.size);
  for (let i = 0; i < type.size; i++) {
    const v = items[i];
    if (typeof v !== 'number' || (type.dtype === 'int32' && !Number.isInteger(v))) {
      throw new TypeError(
        `element ${i} is ${describe(v)} in a ${typeName(type)} feature; return ${type.dtype === 'int32' ? 'integers' : 'numbers'}`,
      );
    }
    out[i] = v;
  }
  return out;
}
