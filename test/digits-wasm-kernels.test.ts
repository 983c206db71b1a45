import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { useWasmForTraining } from '../features/digits/wasm-training-kernels.js';

// The digits example trains its CNN on the wasm backend with featureflow's own gradient kernels
// (Conv2DBackpropFilter, Conv2DBackpropInput, MaxPoolGrad). The cpu backend is the oracle: the same
// gradients of random inputs, through the same ops, must agree.

let wasmReady = false;
beforeAll(async () => {
  wasmReady = (await useWasmForTraining()) === 'wasm';
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

/** A seeded uniform random tensor in [-1, 1]. */
function random(shape: number[], seed: number): { shape: number[]; values: Float32Array } {
  let s = seed >>> 0;
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    values[i] = (s / 4294967296) * 2 - 1;
  }
  return { shape, values };
}

/** Gradients of sum(op(inputs) · weights) with respect to every input, on `backend`. */
async function gradients(
  backend: string,
  inputs: { shape: number[]; values: Float32Array }[],
  op: (...xs: tf.Tensor[]) => tf.Tensor,
  seed: number,
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.values, i.shape));
    const outShape = op(...xs).shape;
    const w = random(outShape, seed);
    const weights = tf.tensor(w.values, w.shape);
    const grads = tf.grads((...args: tf.Tensor[]) =>
      op(...args)
        .mul(weights)
        .sum(),
    )(xs);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

function expectClose(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++)
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / (1 + Math.abs(expected[i]!)));
  expect(worst).toBeLessThan(1e-4);
}

describe('the wasm training kernels agree with the cpu backend', () => {
  const convs: { name: string; x: number[]; w: number[]; strides: number; pad: 'same' | 'valid' }[] = [
    {
      name: '3×3 valid, 1 → 16 channels (the first layer)',
      x: [4, 28, 28, 1],
      w: [3, 3, 1, 16],
      strides: 1,
      pad: 'valid',
    },
    {
      name: '3×3 valid, 16 → 32 channels (the second layer)',
      x: [3, 13, 13, 16],
      w: [3, 3, 16, 32],
      strides: 1,
      pad: 'valid',
    },
    { name: '5×5 same, stride 2, odd sizes', x: [2, 11, 9, 3], w: [5, 5, 3, 4], strides: 2, pad: 'same' },
    { name: '1×1 same', x: [1, 6, 7, 5], w: [1, 1, 5, 2], strides: 1, pad: 'same' },
  ];
  for (const [n, c] of convs.entries()) {
    test(`conv2d gradients (filter and input): ${c.name}`, async () => {
      expect(wasmReady).toBe(true);
      const inputs = [random(c.x, 10 + n), random(c.w, 20 + n)];
      const op = (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad);
      const [cpuX, cpuW] = await gradients('cpu', inputs, op, 30 + n);
      const [wasmX, wasmW] = await gradients('wasm', inputs, op, 30 + n);
      expectClose(wasmW!, cpuW!);
      expectClose(wasmX!, cpuX!);
    });
  }

  const pools: { name: string; x: number[]; size: number; strides: number; pad: 'same' | 'valid' }[] = [
    {
      name: '2×2 stride 2 valid (the model’s pooling), odd size',
      x: [4, 13, 13, 8],
      size: 2,
      strides: 2,
      pad: 'valid',
    },
    { name: '3×3 stride 1 same (overlapping windows add up)', x: [2, 7, 6, 3], size: 3, strides: 1, pad: 'same' },
  ];
  for (const [n, p] of pools.entries()) {
    test(`maxPool gradient: ${p.name}`, async () => {
      expect(wasmReady).toBe(true);
      const inputs = [random(p.x, 40 + n)];
      const op = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, p.size, p.strides, p.pad);
      const [cpu] = await gradients('cpu', inputs, op, 50 + n);
      const [wasm] = await gradients('wasm', inputs, op, 50 + n);
      expectClose(wasm!, cpu!);
    });
  }
});
