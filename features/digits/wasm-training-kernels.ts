/**
 * The gradient kernels a small CNN needs to train on TF.js's wasm backend in Node (tfjs-node cannot
 * be installed everywhere; the cpu backend is plain JavaScript and ~100x slower on these gradients).
 * TF.js 4.22's wasm backend:
 * - has no `Conv2DBackpropFilter` at all, and its `Conv2DBackpropInput` is a direct loop. Both become
 *   im2col plus the backend's own `BatchMatMul`: dW = patches(x)ᵀ · dy, dx = col2im(dy · Wᵀ);
 * - has a `MaxPoolGrad` that routes the gradient to the wrong inputs (it disagreed with the cpu
 *   backend on 18 of 20 random 2×2 poolings here) and is slow: replaced by a plain loop.
 *
 * Measured on the 2-core machine (busy), batch 64, 3×3 kernels: the filter gradient of 13×13×16 → 32
 * took 110 ms as a loop-based kernel (the native Conv3DBackpropFilterV2 on a depth-1 volume) and
 * 5 ms here; the input gradient 30 ms natively and 5 ms here; MaxPoolGrad of 26×26×8 11 ms natively
 * and 3 ms here.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  KernelFunc,
  MaxPoolGradAttrs,
  TensorInfo,
} from '@tensorflow/tfjs';

/**
 * What the kernels use of the wasm backend (`BackendWasm` of @tensorflow/tfjs-backend-wasm): heap
 * views of tensors, allocation and release. The backend is handed to every kernel; its class is not
 * exported from the package's entry point.
 */
interface WasmBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
}

/** The geometry of one 2-D convolution, NHWC, with its padding resolved. */
type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

function checkNhwc(kernel: string, dataFormat: string): void {
  if (dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm (featureflow's kernel) takes NHWC data, got ${dataFormat}; use channelsLast`);
  }
}

/** `a · b` by the wasm backend's BatchMatMul, on rank-3 views of the inputs. */
function matMul(backend: WasmBackend, a: TensorInfo, b: TensorInfo): TensorInfo {
  // Never with transposeA / transposeB: the wasm backend multiplies a transposed operand in a plain
  // loop, 10-20x slower than the untransposed case (26 ms against 2 ms for [144, 7744] · [7744, 32]),
  // so the callers lay out their operands transposed themselves.
  const kernel = tf.getKernel(tf.BatchMatMul, 'wasm');
  return kernel.kernelFunc({
    inputs: { a, b },
    backend: backend as unknown as tf.KernelBackend,
    attrs: { transposeA: false, transposeB: false },
  }) as TensorInfo;
}

/**
 * Fills `patches` ([filterH · filterW · inChannels, batch · outH · outW], row-major: one row per filter
 * tap, one column per output position) with the input value each position sees through each tap;
 * padding reads as 0.
 */
function im2colTransposed(x: Float32Array, info: ConvInfo, patches: Float32Array): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  let at = 0;
  for (let r = 0; r < filterHeight; r++) {
    for (let s = 0; s < filterWidth; s++) {
      for (let c = 0; c < inChannels; c++) {
        for (let n = 0; n < batchSize; n++) {
          const image = n * inHeight * inWidth * inChannels + c;
          for (let oy = 0; oy < outHeight; oy++) {
            const iy = oy * strideHeight - top + r * dilationHeight;
            if (iy < 0 || iy >= inHeight) {
              patches.fill(0, at, at + outWidth);
              at += outWidth;
              continue;
            }
            const row = image + iy * inWidth * inChannels;
            for (let ox = 0; ox < outWidth; ox++, at++) {
              const ix = ox * strideWidth - left + s * dilationWidth;
              patches[at] = ix < 0 || ix >= inWidth ? 0 : x[row + ix * inChannels]!;
            }
          }
        }
      }
    }
  }
}

/**
 * Adds each row of `cols` ([batch · outH · outW, filterH · filterW · inChannels]: per output position,
 * what flows back through each filter tap) into the input position the tap reads: the adjoint of im2col.
 */
function col2im(cols: Float32Array, info: ConvInfo, dx: Float32Array): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  dx.fill(0);
  let at = 0;
  for (let n = 0; n < batchSize; n++) {
    const image = n * inHeight * inWidth * inChannels;
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        for (let r = 0; r < filterHeight; r++) {
          const iy = oy * strideHeight - top + r * dilationHeight;
          for (let s = 0; s < filterWidth; s++, at += inChannels) {
            const ix = ox * strideWidth - left + s * dilationWidth;
            if (iy < 0 || iy >= inHeight || ix < 0 || ix >= inWidth) continue;
            const to = image + (iy * inWidth + ix) * inChannels;
            for (let c = 0; c < inChannels; c++) dx[to + c]! += cols[at + c]!;
          }
        }
      }
    }
  }
}

/** dW = patches(x)ᵀ · dy: [filterH · filterW · inChannels, outChannels], which is the filter's own layout. */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend: kernelBackend, attrs }) => {
  const backend = kernelBackend as unknown as WasmBackend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  checkNhwc('Conv2DBackpropFilter', dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const positions = info.batchSize * info.outHeight * info.outWidth;
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const patches = backend.makeOutput([1, taps, positions], 'float32');
  try {
    // Heap views are taken after the allocation: growing the wasm heap detaches earlier views.
    im2colTransposed(backend.typedArrayFromHeap(x), info, backend.typedArrayFromHeap(patches));
    const dw = matMul(backend, patches, { ...dy, shape: [1, positions, info.outChannels] });
    return { ...dw, shape: [...filterShape] };
  } finally {
    backend.disposeData(patches.dataId);
  }
};

/** dx = col2im(dy · Wᵀ). */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend: kernelBackend, attrs }) => {
  const backend = kernelBackend as unknown as WasmBackend;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
  checkNhwc('Conv2DBackpropInput', dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const positions = info.batchSize * info.outHeight * info.outWidth;
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const outChannels = info.outChannels;
  const filterT = backend.makeOutput([1, outChannels, taps], 'float32');
  let cols: TensorInfo | undefined;
  try {
    const w = backend.typedArrayFromHeap(filter);
    const wT = backend.typedArrayFromHeap(filterT);
    for (let k = 0; k < taps; k++) for (let o = 0; o < outChannels; o++) wT[o * taps + k] = w[k * outChannels + o]!;
    cols = matMul(backend, { ...dy, shape: [1, positions, outChannels] }, filterT);
    const dx = backend.makeOutput([...inputShape], 'float32');
    col2im(backend.typedArrayFromHeap(cols), info, backend.typedArrayFromHeap(dx));
    return dx;
  } finally {
    backend.disposeData(filterT.dataId);
    if (cols) backend.disposeData(cols.dataId);
  }
};

/**
 * dx: each pooling window's gradient goes to the input that was its maximum (the first one on a tie,
 * as the cpu backend does); windows that overlap add up.
 */
const maxPoolGrad: KernelFunc = ({ inputs, backend: kernelBackend, attrs }) => {
  const backend = kernelBackend as unknown as WasmBackend;
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const dx = backend.makeOutput([...input.shape], 'float32');
  const x = backend.typedArrayFromHeap(input);
  const g = backend.typedArrayFromHeap(dy);
  const out = backend.typedArrayFromHeap(dx);
  out.fill(0);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { effectiveFilterHeight, effectiveFilterWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  let at = 0;
  for (let n = 0; n < batchSize; n++) {
    const image = n * inHeight * inWidth * inChannels;
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        for (let c = 0; c < inChannels; c++, at++) {
          let best = Number.NEGATIVE_INFINITY;
          let where = -1;
          for (let r = 0; r < effectiveFilterHeight; r += dilationHeight) {
            const iy = oy * strideHeight - top + r;
            if (iy < 0 || iy >= inHeight) continue;
            for (let s = 0; s < effectiveFilterWidth; s += dilationWidth) {
              const ix = ox * strideWidth - left + s;
              if (ix < 0 || ix >= inWidth) continue;
              const i = image + (iy * inWidth + ix) * inChannels + c;
              if (where < 0 || x[i]! > best) {
                best = x[i]!;
                where = i;
              }
            }
          }
          if (where >= 0) out[where]! += g[at]!;
        }
      }
    }
  }
  return dx;
};

let registered = false;

/**
 * Registers the gradient kernels above for the wasm backend, replacing its own Conv2DBackpropInput and
 * MaxPoolGrad in this thread; idempotent. Call before training a model with conv2d or maxPooling2d
 * layers on wasm; scoring needs none of this (forward kernels are untouched).
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, kernelFunc] of [
    [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
    [tf.Conv2DBackpropInput, conv2DBackpropInput],
    [tf.MaxPoolGrad, maxPoolGrad],
  ] as const) {
    // Registering a kernel twice throws; the wasm package registers its own on import.
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
  }
}

/**
 * Makes TF.js train on the wasm backend with the kernels above registered, and returns the backend's
 * name; falls back to the (much slower) cpu backend where wasm cannot start.
 */
export async function useWasmForTraining(): Promise<string> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // In Node the .wasm files are read from the package's directory, not fetched from a CDN.
  wasm.setWasmPaths(`${dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  if (await tf.setBackend('wasm').catch(() => false)) registerWasmTrainingKernels();
  else await tf.setBackend('cpu');
  await tf.ready();
  tf.enableProdMode();
  return tf.getBackend();
}
