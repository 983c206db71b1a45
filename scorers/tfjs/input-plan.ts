/**
 * How a feature service's values become a model's input tensors. One model input takes every feature,
 * flattened and concatenated in the service's order, reshaped to the input's shape (a [28, 28] tensor
 * feature fills a [null, 28, 28, 1] or a [null, 784] input). Several inputs are matched to features by
 * name. The plan is made once at open; a mismatch is a coded error naming the feature and both shapes.
 */
import { FeatureflowError } from '../../framework/errors.js';
import { typeName, type FeatureService, type FeatureType } from '../../framework/features/index.js';
import type { ScoringInput } from '../../framework/interfaces/scorer.js';
import type { TensorSpec } from './tfjs-protocol.js';

/** One feature of the service: where it is in an example and how many numbers it gives. */
export interface FeatureSlot {
  /** `view.feature`, as messages name it. */
  readonly id: string;
  readonly feature: string;
  readonly view: string;
  readonly type: FeatureType;
  /** Numbers it gives: 1 for a scalar, the element count for a tensor. */
  readonly size: number;
  /** Its index in a {@link ScoringInput}. */
  readonly position: number;
}

/** What the scorer sends for one model input. */
export interface InputPlan {
  readonly name: string;
  readonly dtype: 'float32' | 'int32' | 'bool';
  /** Shape of one example (the batch dimension left out), free dimensions resolved. */
  readonly shape: readonly number[];
  /** Numbers per example: the product of `shape`. */
  readonly size: number;
  /** The features filling it, in order. */
  readonly slots: readonly FeatureSlot[];
}

export interface ModelPlan {
  /** In the model's input order. */
  readonly inputs: readonly InputPlan[];
  /** Every feature of the service, in {@link ScoringInput} order. */
  readonly slots: readonly FeatureSlot[];
  /** Rows of every batch when the model's batch dimension is fixed (batches are padded to it). */
  readonly fixedBatch?: number;
}

/** The service's features in scoring order: selections in order, features in selection order. */
export function serviceSlots(service: FeatureService): FeatureSlot[] {
  const slots: FeatureSlot[] = [];
  for (const selection of service.selections) {
    for (const feature of selection.features) {
      const type = selection.view.features[feature]!;
      const size = type.kind === 'tensor' ? type.size : 1;
      slots.push({
        id: `${selection.view.name}.${feature}`,
        feature,
        view: selection.view.name,
        type,
        size,
        position: slots.length,
      });
    }
  }
  return slots;
}

const free = (d: number | null | undefined): boolean => d === null || d === undefined || d < 0;
const plural = (n: number): string => `${n} value${n === 1 ? '' : 's'}`;

function shapeText(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (free(d) ? '?' : d)).join(', ')}]`;
}

function slotText(slot: FeatureSlot): string {
  return `${slot.id} ${typeName(slot.type)} (${plural(slot.size)})`;
}

/** Which input dtypes a feature may feed: a float input takes any number, an int input integers or booleans. */
function feeds(inputDtype: InputPlan['dtype'], type: FeatureType): boolean {
  if (inputDtype === 'float32') return true;
  if (inputDtype === 'int32') return type.dtype === 'int32' || type.dtype === 'int64' || type.dtype === 'bool';
  return type.dtype === 'bool';
}

/**
 * The input's per-example shape for `count` numbers: its declared dimensions after the batch, a free
 * one computed from the count; undefined when they cannot hold `count`.
 */
function resolveShape(
  dims: readonly (number | null)[],
  count: number,
  slots: readonly FeatureSlot[],
): number[] | undefined {
  const unknown = dims.filter(free).length;
  const known = dims.reduce<number>((p, d) => (free(d) ? p : p * d!), 1);
  if (unknown === 0) return known === count ? dims.map(Number) : undefined;
  if (unknown === 1)
    return count % known === 0 && count > 0 ? dims.map((d) => (free(d) ? count / known : d!)) : undefined;
  // Several free dimensions: one tensor feature of the same rank gives them.
  const only = slots.length === 1 ? slots[0]!.type : undefined;
  if (
    only?.kind === 'tensor' &&
    only.shape.length === dims.length &&
    dims.every((d, i) => free(d) || d === only.shape[i])
  )
    return [...only.shape];
  return undefined;
}

/**
 * Matches the service's features to the model's inputs. Throws `FF_MODEL_INPUT` naming the feature,
 * the input's shape and the feature's shape (with element counts) when they do not fit.
 */
export function planInputs(model: string, service: FeatureService, inputs: readonly TensorSpec[]): ModelPlan {
  const slots = serviceSlots(service);
  const fail = (problem: string, fix: string) =>
    new FeatureflowError(
      'FF_MODEL_INPUT',
      `model ${model} does not fit feature service ${service.name}: ${problem}; ${fix}`,
    );
  for (const slot of slots) {
    if (slot.type.dtype === 'text' || slot.type.dtype === 'timestamp') {
      throw fail(
        `feature ${slot.id} is ${slot.type.dtype}, and a model takes numbers`,
        `derive a numeric feature from it in the view's transform (e.g. a length, a category index, an age in seconds) and select that`,
      );
    }
  }
  if (inputs.length === 0) throw fail('the model declares no inputs', 'save a model that takes inputs');
  const groups: FeatureSlot[][] = inputs.length === 1 ? [slots] : inputs.map(() => []);
  if (inputs.length > 1) {
    // By name: the input is named after the feature (`pixels`), or after view and feature (`digits_pixels`).
    const key = (name: string) => name.replace(/:\d+$/, '');
    for (const slot of slots) {
      const names = [slot.feature, `${slot.view}_${slot.feature}`, slot.id];
      const matches = inputs.map((input, i) => (names.includes(key(input.name)) ? i : -1)).filter((i) => i >= 0);
      if (matches.length === 0) {
        throw fail(
          `feature ${slot.id} matches none of the model's inputs (${inputs.map((i) => key(i.name)).join(', ')})`,
          `name each input of a multi-input model after its feature (${slot.feature} or ${slot.view}_${slot.feature}), or leave the feature out of the service`,
        );
      }
      groups[matches[0]!]!.push(slot);
    }
    for (const [i, group] of groups.entries()) {
      if (group.length === 0) {
        throw fail(
          `the model's input ${key(inputs[i]!.name)} matches no feature (features: ${slots.map((s) => s.id).join(', ')})`,
          'name each input of a multi-input model after the feature it takes, or add that feature to the service',
        );
      }
      if (group.length > 1) {
        throw fail(
          `features ${group.map((s) => s.id).join(' and ')} both match the model's input ${key(inputs[i]!.name)}`,
          'name the inputs view_feature to tell the features apart',
        );
      }
    }
  }
  let fixedBatch: number | undefined;
  const plans = inputs.map((input, i): InputPlan => {
    const group = groups[i]!;
    const count = group.reduce((n, s) => n + s.size, 0);
    const given =
      group.length === 1
        ? `feature ${slotText(group[0]!)}`
        : `the features ${group.map(slotText).join(' + ')} = ${plural(count)}`;
    if (!input.shape || input.shape.length === 0) {
      throw fail(
        `its input ${input.name} declares no batch dimension or shape, and ${given}`,
        'give the model input a shape such as [null, ...] (a placeholder with a shape)',
      );
    }
    const dims = input.shape.slice(1);
    const batch = input.shape[0];
    if (!free(batch)) fixedBatch = Math.min(fixedBatch ?? batch!, batch!);
    const dtype =
      input.dtype === undefined || input.dtype === 'float32'
        ? 'float32'
        : input.dtype === 'int32' || input.dtype === 'bool'
          ? input.dtype
          : undefined;
    if (!dtype)
      throw fail(
        `its input ${input.name} takes ${input.dtype}, which no feature gives`,
        'give the model float32, int32 or bool inputs',
      );
    const bad = group.find((s) => !feeds(dtype, s.type));
    if (bad) {
      throw fail(
        `its input ${input.name} takes ${dtype} and feature ${bad.id} is ${typeName(bad.type)}`,
        dtype === 'bool'
          ? 'select bool features for it'
          : 'select int32, int64 or bool features for an int32 input, or give the model a float32 input',
      );
    }
    const shape = resolveShape(dims, count, group);
    if (!shape) {
      const known = dims.every((d) => !free(d)) ? ` (${plural(dims.reduce<number>((p, d) => p * d!, 1))})` : '';
      throw fail(
        `its input ${input.name} takes ${shapeText(dims)}${known} per example and ${given}`,
        'select the features the model was trained on, with the same shapes, or retrain the model on these features',
      );
    }
    return { name: input.name, dtype, shape, size: count, slots: group };
  });
  return { inputs: plans, slots, ...(fixedBatch !== undefined ? { fixedBatch } : {}) };
}

function isNumbers(value: unknown): value is ArrayLike<number> {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

/** Checks one example against the service's features; throws `FF_MODEL_INPUT` naming the example and the feature. */
export function checkExample(
  service: FeatureService,
  slots: readonly FeatureSlot[],
  example: ScoringInput,
  index: number,
): void {
  const fail = (problem: string, fix: string) =>
    new FeatureflowError('FF_MODEL_INPUT', `example ${index} for feature service ${service.name}: ${problem}; ${fix}`);
  if (!Array.isArray(example) || example.length !== slots.length) {
    throw fail(
      `it has ${Array.isArray(example) ? plural(example.length) : `no array but ${typeof example}`}, and the service has ${slots.length} features (${slots.map((s) => s.id).join(', ')})`,
      "give one value per feature, in the service's order",
    );
  }
  for (const slot of slots) {
    const value = example[slot.position];
    if (value === null || value === undefined) {
      throw fail(`feature ${slot.id} is null`, 'score only entities whose features are all present');
    }
    if (slot.type.kind === 'tensor') {
      if (!isNumbers(value) || value.length !== slot.size) {
        throw fail(
          `feature ${slot.id} is ${isNumbers(value) ? `${plural(value.length)} long` : `a ${typeof value}`}, and its type ${typeName(slot.type)} has ${plural(slot.size)}`,
          'give the tensor flat, in row-major order',
        );
      }
    } else if (typeof value !== 'number' && typeof value !== 'bigint' && typeof value !== 'boolean') {
      throw fail(
        `feature ${slot.id} is a ${isNumbers(value) ? 'array' : typeof value}, and its type is ${typeName(slot.type)}`,
        'give a number',
      );
    }
  }
}

/** One flat array per model input holding `examples` (checked), padded with zeros to `rows`. */
export function packInputs(
  plan: ModelPlan,
  examples: readonly ScoringInput[],
  rows: number,
): (Float32Array | Int32Array)[] {
  return plan.inputs.map((input) => {
    const out = input.dtype === 'float32' ? new Float32Array(rows * input.size) : new Int32Array(rows * input.size);
    for (let r = 0; r < examples.length; r++) {
      const example = examples[r]!;
      let at = r * input.size;
      for (const slot of input.slots) {
        const value = example[slot.position]!;
        if (typeof value === 'object') out.set(value as ArrayLike<number>, at);
        else out[at] = typeof value === 'number' ? value : Number(value);
        at += slot.size;
      }
    }
    return out;
  });
}
