/**
 * A scoring worker thread: picks a TF.js backend, loads the model from the bytes the scorer read, and
 * answers `predict` messages one at a time. It imports no featureflow module at run time (types only),
 * so the same file runs as TypeScript (under tsx) and as the built JavaScript.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import type * as TF from '@tensorflow/tfjs';
import type { PredictMessage, ResultMessage, StartMessage, TensorSpec, WorkerInit } from './tfjs-protocol.js';

type Tf = typeof TF;
type Model = TF.LayersModel | TF.GraphModel;

// Optional: its install downloads libtensorflow, which fails where only the npm registry is reachable.
// A variable, so that TypeScript does not look for the package.
const NODE_BACKEND = '@tensorflow/tfjs-node';

/** tfjs-node, else wasm, else cpu (as `backend` allows); the reasons a backend was passed over. */
async function startTf(backend: WorkerInit['backend']): Promise<{ tf: Tf; fallbacks: string[] }> {
  const fallbacks: string[] = [];
  if (backend === 'auto' || backend === 'node') {
    try {
      // tfjs-node re-exports the whole of @tensorflow/tfjs: using its namespace keeps model and backend on one engine.
      return { tf: (await import(NODE_BACKEND)) as Tf, fallbacks };
    } catch (error) {
      if (backend === 'node')
        throw new Error(
          `backend 'node' needs ${NODE_BACKEND}, which cannot be imported (${(error as Error).message}); install it, or set backend to 'auto'`,
        );
      fallbacks.push(`${NODE_BACKEND} cannot be imported`);
    }
  }
  const tf = await import('@tensorflow/tfjs');
  if (backend === 'auto' || backend === 'wasm') {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // In Node the wasm binaries are read from disk: point the backend at the package's dist folder.
      wasm.setWasmPaths(`${dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'))}/`);
      if (await tf.setBackend('wasm')) return { tf, fallbacks };
      fallbacks.push('the wasm backend did not initialise');
    } catch (error) {
      if (backend === 'wasm')
        throw new Error(`backend 'wasm' cannot start: ${(error as Error).message}; set backend to 'auto' or 'cpu'`);
      fallbacks.push(`the wasm backend cannot start (${(error as Error).message})`);
    }
  }
  await tf.setBackend('cpu');
  return { tf, fallbacks };
}

function formatOf(json: Record<string, unknown>): 'layers-model' | 'graph-model' {
  if (json.format === 'layers-model' || json.format === 'graph-model') return json.format;
  const topology = json.modelTopology as Record<string, unknown> | undefined;
  if (topology && Array.isArray(topology.node)) return 'graph-model';
  if (topology && ('class_name' in topology || 'model_config' in topology)) return 'layers-model';
  throw new Error(
    `model.json has no format ('layers-model' or 'graph-model') and its modelTopology is neither a Keras model nor a graph`,
  );
}

async function load(tf: Tf, init: WorkerInit): Promise<{ model: Model; format: 'layers-model' | 'graph-model' }> {
  const json = init.modelJson as unknown as TF.io.ModelJSON;
  const format = formatOf(init.modelJson);
  const specs = (json.weightsManifest ?? []).flatMap((group) => group.weights);
  const artifacts = tf.io.getModelArtifactsForJSONSync(json, specs, init.weights);
  const handler = tf.io.fromMemory(artifacts);
  const model = format === 'graph-model' ? await tf.loadGraphModel(handler) : await tf.loadLayersModel(handler);
  return { model, format };
}

function describe(model: Model): { inputs: TensorSpec[]; outputs: TensorSpec[] } {
  if ('inputNames' in model) {
    return {
      // A Sequential model leaves inputNames/outputNames unset: its symbolic tensors carry the names.
      inputs: model.inputs.map((t, i) => ({ name: model.inputNames?.[i] ?? t.name, shape: t.shape, dtype: t.dtype })),
      outputs: model.outputs.map((t, i) => ({
        name: model.outputNames?.[i] ?? t.name,
        shape: t.shape,
        dtype: t.dtype,
      })),
    };
  }
  const spec = (t: TF.GraphModel['inputs'][number]): TensorSpec => ({
    name: t.name,
    ...(t.shape ? { shape: t.shape } : {}),
    ...(t.dtype ? { dtype: t.dtype } : {}),
  });
  return { inputs: model.inputs.map(spec), outputs: model.outputs.map(spec) };
}

function asList(model: Model, y: TF.Tensor | TF.Tensor[] | TF.NamedTensorMap): TF.Tensor[] {
  if (Array.isArray(y)) return y;
  if (y instanceof Object && 'dataId' in y) return [y as TF.Tensor];
  const named = y as TF.NamedTensorMap;
  const names = 'outputNodes' in model ? model.outputNodes : Object.keys(named);
  return names.map((n) => named[n]!);
}

// Graphs with control flow or dynamic shapes run only with predictAsync, which warns on every call
// for any other graph: the first batch finds out which kind this one is.
let dynamicGraph = false;

async function predictGraph(
  model: TF.GraphModel,
  named: TF.NamedTensorMap,
): Promise<TF.Tensor | TF.Tensor[] | TF.NamedTensorMap> {
  if (!dynamicGraph) {
    try {
      return model.predict(named);
    } catch (error) {
      if (!/executeAsync|dynamic|control flow/i.test((error as Error).message)) throw error;
      dynamicGraph = true;
    }
  }
  return model.predictAsync(named);
}

async function predict(
  tf: Tf,
  model: Model,
  inputs: readonly TensorSpec[],
  message: PredictMessage,
): Promise<ResultMessage> {
  const xs = message.inputs.map((data, i) => {
    const dtype = inputs[i]!.dtype === 'int32' || inputs[i]!.dtype === 'bool' ? inputs[i]!.dtype : 'float32';
    return tf.tensor(data, [message.rows, ...message.shapes[i]!], dtype as 'float32' | 'int32' | 'bool');
  });
  let ys: TF.Tensor[] = [];
  try {
    if ('inputNames' in model) {
      ys = asList(model, model.predict(xs.length === 1 ? xs[0]! : xs));
    } else {
      const named: TF.NamedTensorMap = Object.fromEntries(inputs.map((spec, i) => [spec.name, xs[i]!]));
      ys = asList(model, await predictGraph(model, named));
    }
    // The result's buffers are transferred: wasm reads out a fresh copy, but the cpu backend hands out
    // its own storage, which another tensor (a weight, for a model that passes one through) may share.
    const fresh = tf.getBackend() === 'wasm';
    const outputs = await Promise.all(
      ys.map(async (y) => {
        const data = await y.data();
        if (data instanceof Float32Array) return fresh ? data : data.slice();
        return Float32Array.from(data as ArrayLike<number>, Number);
      }),
    );
    return { type: 'result', id: message.id, outputs, shapes: ys.map((y) => y.shape) };
  } finally {
    for (const t of [...xs, ...ys]) t.dispose();
  }
}

async function main(): Promise<void> {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  let tf: Tf;
  let model: Model;
  let inputs: readonly TensorSpec[];
  try {
    const started = await startTf(init.backend);
    tf = started.tf;
    // Production mode: no debug checks, and no console advice about tfjs-node from the cpu backend.
    tf.enableProdMode();
    const loaded = await load(tf, init);
    model = loaded.model;
    const described = describe(model);
    inputs = described.inputs;
    const ready: StartMessage = {
      type: 'ready',
      backend: tf.getBackend(),
      fallbacks: started.fallbacks,
      format: loaded.format,
      ...described,
    };
    port.postMessage(ready);
  } catch (error) {
    const failed: StartMessage = { type: 'failed', message: (error as Error)?.message ?? String(error) };
    port.postMessage(failed);
    return;
  }
  // Batches run one after the other, in arrival order (the scorer may send the next one early).
  let previous: Promise<void> = Promise.resolve();
  port.on('message', (message: PredictMessage) => {
    previous = previous.then(() =>
      predict(tf, model, inputs, message).then(
        (result) =>
          port.postMessage(
            result,
            result.type === 'result' ? [...new Set(result.outputs.map((o) => o.buffer as ArrayBuffer))] : [],
          ),
        (error: unknown) =>
          port.postMessage({
            type: 'error',
            id: message.id,
            message: (error as Error)?.message ?? String(error),
          } satisfies ResultMessage),
      ),
    );
  });
}

await main();
