/**
 * The messages between the scorer (main thread) and a scoring worker. Types only: the worker imports
 * nothing of featureflow at run time, so it also runs alone as plain JavaScript.
 */

/** Which TF.js backend to run: `auto` tries `node` (tfjs-node), then `wasm`, then `cpu`. */
export type TfjsBackend = 'auto' | 'node' | 'wasm' | 'cpu';

/** What a worker gets at start (`workerData`). */
export interface WorkerInit {
  /** The model's name, for messages. */
  readonly model: string;
  /** The parsed `model.json`. */
  readonly modelJson: Record<string, unknown>;
  /** Every weight file of the manifest, concatenated in manifest order. */
  readonly weights: ArrayBuffer;
  readonly backend: TfjsBackend;
}

/** A model input or output as TF.js describes it; `null` (or -1) is a free dimension such as the batch. */
export interface TensorSpec {
  readonly name: string;
  /** Undefined when the model does not say (a graph model's outputs, an unshaped placeholder). */
  readonly shape?: readonly (number | null)[];
  readonly dtype?: string;
}

/** Worker → scorer, once: the model loaded (or not). */
export type StartMessage =
  | {
      readonly type: 'ready';
      /** The backend TF.js runs on: `tensorflow` (tfjs-node), `wasm` or `cpu`. */
      readonly backend: string;
      /** Why a preferred backend was passed over, for the start-up log. */
      readonly fallbacks: readonly string[];
      readonly format: 'layers-model' | 'graph-model';
      readonly inputs: readonly TensorSpec[];
      readonly outputs: readonly TensorSpec[];
    }
  | { readonly type: 'failed'; readonly message: string };

/** Scorer → worker: one micro-batch, one flat array per model input (`rows` × the input's size). */
export interface PredictMessage {
  readonly type: 'predict';
  readonly id: number;
  readonly rows: number;
  readonly inputs: readonly (Float32Array | Int32Array)[];
  /** Shape of one example of each input (the batch dimension left out). */
  readonly shapes: readonly (readonly number[])[];
}

/** Worker → scorer: the outputs of one micro-batch (flat, with their shapes), or the model's error. */
export type ResultMessage =
  | {
      readonly type: 'result';
      readonly id: number;
      readonly outputs: readonly Float32Array[];
      readonly shapes: readonly (readonly number[])[];
    }
  | { readonly type: 'error'; readonly id: number; readonly message: string };
