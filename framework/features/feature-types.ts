/**
 * Feature types: what a feature view declares for each feature, the JavaScript value a transform
 * returns for it, and the check applied to every returned value.
 */

/** Scalar feature dtypes. `timestamp` is an instant (stored as TIMESTAMPTZ, microseconds, UTC). */
export type ScalarDType = 'float32' | 'float64' | 'int32' | 'int64' | 'bool' | 'text' | 'timestamp';
/** Element dtypes of a fixed-shape tensor feature. */
export type TensorDType = 'float32' | 'float64' | 'int32';

export interface ScalarType<D extends ScalarDType = ScalarDType> {
  readonly kind: 'scalar';
  readonly dtype: D;
}

/** A fixed-shape numeric tensor, stored flat (row-major) as a fixed-size array of `size` elements. */
export interface TensorType<D extends TensorDType = TensorDType> {
  readonly kind: 'tensor';
  readonly dtype: D;
  readonly shape: readonly number[];
  /** Number of elements: the product of the shape. */
  readonly size: number;
}

export type FeatureType = ScalarType | TensorType;

/** Feature name → type, as a view declares its features. */
export type FeatureSchema = Readonly<Record<string, FeatureType>>;

const scalar = <D extends ScalarDType>(dtype: D): ScalarType<D> => Object.freeze({ kind: 'scalar', dtype });

/** 32-bit float (a JS number; stored as FLOAT). */
export const float32 = scalar('float32');
/** 64-bit float (a JS number; stored as DOUBLE). */
export const float64 = scalar('float64');
/** 32-bit integer (a JS integer number; stored as INTEGER). */
export const int32 = scalar('int32');
/** 64-bit integer (a bigint, or a safe-integer number; stored as BIGINT). */
export const int64 = scalar('int64');
/** Boolean. */
export const bool = scalar('bool');
/** A string (stored as VARCHAR). */
export const text = scalar('text');
/** An instant: a `Date` or an ISO 8601 string (without an offset it is UTC); stored as TIMESTAMPTZ. */
export const timestamp = scalar('timestamp');

/**
 * A fixed-shape numeric tensor, e.g. `tensor('float32', [28, 28])` for a 28×28 image. The transform
 * returns its elements flat in row-major order (a typed array or a number array).
 *
 * @example
 * features: { pixels: tensor('float32', [28, 28]) },
 * // A plain loop: ~18x faster than Float32Array.from(bytes, (b) => b / 255), which calls the arrow per byte.
 * transform: (row) => {
 *   const bytes = row.pixels as Uint8Array;
 *   const pixels = new Float32Array(bytes.length);
 *   for (let i = 0; i < bytes.length; i++) pixels[i] = bytes[i]! / 255;
 *   return { pixels };
 * },
 */
export function tensor<D extends TensorDType>(dtype: D, shape: readonly number[]): TensorType<D> {
  if (!['float32', 'float64', 'int32'].includes(dtype)) {
    throw new TypeError(`tensor dtype must be float32, float64 or int32, got ${JSON.stringify(dtype)}`);
  }
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new TypeError(`tensor shape must be positive integers, got [${shape.join(', ')}]`);
  }
  return Object.freeze({
    kind: 'tensor',
    dtype,
    shape: Object.freeze([...shape]),
    size: shape.reduce((a, b) => a * b, 1),
  });
}

/** The JavaScript value a transform returns for a feature of type `T` (null is always allowed). */
export type FeatureJsValue<T extends FeatureType> =
  T extends ScalarType<'int64'>
    ? bigint | number
    : T extends ScalarType<'bool'>
      ? boolean
      : T extends ScalarType<'text'>
        ? string
        : T extends ScalarType<'timestamp'>
          ? Date | string
          : T extends ScalarType
            ? number
            : T extends TensorType
              ? ArrayLike<number>
              : never;

/** What a transform returns: one value (or null) per declared feature. */
export type FeatureValues<F extends FeatureSchema> = { [K in keyof F]: FeatureJsValue<F[K]> | null };

/** The type's canonical spelling, used in fingerprints and messages: `float32`, `tensor<float32>[28,28]`. */
export function typeName(type: FeatureType): string {
  return type.kind === 'scalar' ? type.dtype : `tensor<${type.dtype}>[${type.shape.join(',')}]`;
}

/** Parses {@link typeName}'s output back (for definitions read from the store). */
export function parseTypeName(name: string): FeatureType {
  const m = /^tensor<(\w+)>\[([\d,]+)\]$/.exec(name);
  if (m) return tensor(m[1] as TensorDType, m[2]!.split(',').map(Number));
  if (['float32', 'float64', 'int32', 'int64', 'bool', 'text', 'timestamp'].includes(name))
    return scalar(name as ScalarDType);
  throw new TypeError(`unknown feature type ${JSON.stringify(name)}`);
}

/** The DuckDB column type of a feature. */
export function duckdbTypeName(type: FeatureType): string {
  const base = {
    float32: 'FLOAT',
    float64: 'DOUBLE',
    int32: 'INTEGER',
    int64: 'BIGINT',
    bool: 'BOOLEAN',
    text: 'VARCHAR',
    timestamp: 'TIMESTAMPTZ',
  }[type.dtype];
  return type.kind === 'tensor' ? `${base}[${type.size}]` : base;
}
