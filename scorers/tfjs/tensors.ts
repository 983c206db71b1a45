/**
 * Arrow columns → TF.js tensors, for training on an exported feature table (`store.trainingSet`,
 * `store.asOf`). Reads the columns' buffers directly (chunk by chunk), never row objects.
 */
import * as tf from '@tensorflow/tfjs';
import * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../framework/errors.js';

/** Options of {@link toTensors}. */
export interface ToTensorsOptions {
  /** Feature columns forming `x`, in order. A tensor feature keeps its shape (Arrow field metadata `featureflow.shape`). */
  readonly features: readonly string[];
  /** The label column forming `y` (from the spine, or a view's feature). */
  readonly label?: string;
  /** One-hot encodes integer labels into this many classes (y becomes [n, classes]). */
  readonly oneHot?: number;
  /** Shape of one example of `x` (e.g. `[28, 28, 1]`); default the tensor feature's shape, or `[features]`. */
  readonly shape?: readonly number[];
  /** Leaves out rows with a null feature or label (else a null becomes NaN). Default false. */
  readonly dropNulls?: boolean;
}

/** A column as float32 values, `width` per row; rows with a null get NaN and are flagged. */
function columnValues(
  table: arrow.Table,
  name: string,
): { values: Float32Array; width: number; nulls: Uint8Array; shape: number[] } {
  const vector = table.getChild(name);
  if (!vector) {
    throw new FeatureflowError(
      'FF_EXPORT',
      `the table has no column ${name} (it has ${table.schema.fields.map((f) => f.name).join(', ')}); pick existing columns`,
    );
  }
  const field = table.schema.fields.find((f) => f.name === name)!;
  const n = table.numRows;
  const nulls = new Uint8Array(n);
  if (arrow.DataType.isFixedSizeList(field.type)) {
    const width = field.type.listSize;
    const shapeText = field.metadata.get('featureflow.shape');
    const shape = shapeText ? (JSON.parse(shapeText) as number[]) : [width];
    const values = new Float32Array(n * width);
    let row = 0;
    // A record batch's rows are one run of its child's elements: one copy per batch, never per row
    // (a null row's elements are then overwritten with NaN).
    for (const data of vector.data) {
      const child = data.children[0]!;
      const source = child.values as ArrayLike<number | bigint>;
      const start = child.offset + data.offset * width;
      const count = data.length * width;
      if (source instanceof Float32Array || source instanceof Float64Array || source instanceof Int32Array) {
        values.set(source.subarray(start, start + count), row * width);
      } else {
        for (let k = 0; k < count; k++) values[row * width + k] = Number(source[start + k]);
      }
      if (data.nullCount > 0) {
        for (let i = 0; i < data.length; i++) {
          if (data.getValid(i)) continue;
          nulls[row + i] = 1;
          values.fill(NaN, (row + i) * width, (row + i + 1) * width);
        }
      }
      row += data.length;
    }
    return { values, width, nulls, shape };
  }
  if (!(arrow.DataType.isFloat(field.type) || arrow.DataType.isInt(field.type) || arrow.DataType.isBool(field.type))) {
    throw new FeatureflowError(
      'FF_EXPORT',
      `column ${name} is ${String(field.type)}, not numeric; pick numeric, boolean or tensor columns`,
    );
  }
  const values = new Float32Array(n);
  let row = 0;
  for (const data of vector.data) {
    const isBool = arrow.DataType.isBool(field.type);
    const source = data.values as ArrayLike<number | bigint>;
    for (let i = 0; i < data.length; i++, row++) {
      if (!data.getValid(i)) {
        nulls[row] = 1;
        values[row] = NaN;
      } else if (isBool) {
        const bit = data.offset + i;
        values[row] = (data.values[bit >> 3]! >> (bit & 7)) & 1;
      } else {
        values[row] = Number(source[data.offset + i]);
      }
    }
  }
  return { values, width: 1, nulls, shape: [1] };
}

/**
 * The kept rows' features, `width` values per row: one column with every row kept is its values as
 * they are; one column with rows dropped is copied in runs of consecutive kept rows; several columns
 * are interleaved row by row.
 */
function examples(
  columns: readonly { values: Float32Array; width: number }[],
  keep: readonly number[],
  n: number,
  width: number,
) {
  if (columns.length === 1) {
    const { values } = columns[0]!;
    if (keep.length === n) return values;
    const x = new Float32Array(keep.length * width);
    for (let i = 0; i < keep.length; ) {
      let end = i + 1;
      while (end < keep.length && keep[end] === keep[end - 1]! + 1) end++;
      x.set(values.subarray(keep[i]! * width, (keep[end - 1]! + 1) * width), i * width);
      i = end;
    }
    return x;
  }
  const x = new Float32Array(keep.length * width);
  keep.forEach((r, i) => {
    let at = i * width;
    for (const c of columns) {
      x.set(c.values.subarray(r * c.width, (r + 1) * c.width), at);
      at += c.width;
    }
  });
  return x;
}

/**
 * Builds `x` (features) and `y` (label) tensors from Arrow columns.
 *
 * @example
 * const train = await store.trainingSet({ spine, features: [digits] });
 * const { x, y } = toTensors(train, { features: ['pixels'], label: 'label', oneHot: 10, shape: [28, 28, 1] });
 */
export function toTensors(table: arrow.Table, options: ToTensorsOptions): { x: tf.Tensor; y?: tf.Tensor } {
  if (options.features.length === 0)
    throw new FeatureflowError('FF_EXPORT', 'toTensors needs at least one feature column');
  const columns = options.features.map((f) => columnValues(table, f));
  const label = options.label === undefined ? undefined : columnValues(table, options.label);
  const n = table.numRows;
  const keep: number[] = [];
  for (let r = 0; r < n; r++) {
    if (options.dropNulls && (columns.some((c) => c.nulls[r]) || label?.nulls[r])) continue;
    keep.push(r);
  }
  const width = columns.reduce((sum, c) => sum + c.width, 0);
  const x = examples(columns, keep, n, width);
  const shape = options.shape ?? (columns.length === 1 && columns[0]!.width > 1 ? columns[0]!.shape : [width]);
  if (shape.reduce((a, b) => a * b, 1) !== width) {
    throw new FeatureflowError(
      'FF_EXPORT',
      `shape [${shape.join(', ')}] does not hold the ${width} values of one example; fix the shape option`,
    );
  }
  const xs = tf.tensor(x, [keep.length, ...shape], 'float32');
  if (!label) return { x: xs };
  const labels = Float32Array.from(keep, (r) => label.values[r]!);
  if (options.oneHot !== undefined) {
    if (labels.some((v) => !Number.isInteger(v) || v < 0 || v >= options.oneHot!)) {
      xs.dispose();
      throw new FeatureflowError(
        'FF_EXPORT',
        `label ${options.label} has values outside 0…${options.oneHot - 1} (or nulls); fix oneHot, or pass dropNulls: true`,
      );
    }
    const indices = tf.tensor1d(Int32Array.from(labels), 'int32');
    const y = tf.oneHot(indices, options.oneHot);
    indices.dispose();
    return { x: xs, y };
  }
  return { x: xs, y: tf.tensor1d(labels, 'float32') };
}
