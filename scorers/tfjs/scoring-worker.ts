/**
 * One scoring worker thread seen from the scorer: started with the model's bytes, ready once the model
 * loaded, holding up to {@link BATCHES_IN_FLIGHT} micro-batches (it runs them one after the other). A
 * crash (or {@link ScoringWorker.kill}) rejects the batches it held and reports the exit once.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FeatureflowError } from '../../framework/errors.js';
import { batchFailedError, modelLoadError, scorerClosedError, workerDiedError } from './tfjs-errors.js';
import type { PredictMessage, ResultMessage, StartMessage, WorkerInit } from './tfjs-protocol.js';

/**
 * Batches a worker holds at once: while it runs one, the next waits in its port, so the worker does
 * not idle while the main thread hands out results and packs the next batch (bench/scorer.ts on 2
 * busy cores, an MLP at batches of 64: 0.92–0.93× of bare predict with 1, 1.25–1.7× with 2).
 */
export const BATCHES_IN_FLIGHT = 2;

export type WorkerReady = Omit<Extract<StartMessage, { type: 'ready' }>, 'type'>;

/** The outputs of one micro-batch: flat arrays with their shapes (batch dimension first). */
export interface BatchOutputs {
  readonly outputs: readonly Float32Array[];
  readonly shapes: readonly (readonly number[])[];
}

/**
 * The worker's entry: `tfjs-worker.ts` beside this module under tsx or vitest, `tfjs-worker.js` in the
 * built package.
 */
export function defaultWorkerScript(): URL {
  return new URL(import.meta.url.endsWith('.ts') ? './tfjs-worker.ts' : './tfjs-worker.js', import.meta.url);
}

/** URL of tsx's ESM registration API, found through tsx's own exports map. */
function tsxApiUrl(): string {
  const packageFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const exports = (
    JSON.parse(readFileSync(packageFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> }
  ).exports;
  return pathToFileURL(join(dirname(packageFile), exports['./esm/api']!.import.default)).href;
}

function spawn(script: URL, init: WorkerInit): Worker {
  if (script.pathname.endsWith('.ts')) {
    // Node 20 does not apply `--import tsx` from a worker's execArgv to the worker's entry module (it
    // fails with ERR_UNKNOWN_FILE_EXTENSION): register tsx's hooks inside the worker, then import the entry.
    const source = `import(${JSON.stringify(tsxApiUrl())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(script.href)}); });`;
    return new Worker(source, { eval: true, workerData: init });
  }
  return new Worker(script, { workerData: init });
}

let nextId = 1;

export class ScoringWorker {
  /** Resolves once the model loaded; rejects with `FF_MODEL_LOAD` when it cannot. */
  readonly ready: Promise<WorkerReady>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(outputs: BatchOutputs): void; reject(error: Error): void }>();
  private started = false;
  private dead = false;
  private stopping = false;
  private lastError: Error | undefined;
  private readonly exited: Promise<void>;
  private readonly failStart: (error: Error) => void;
  private readonly model: string;

  /**
   * @param onCrash called once when the worker dies after it was ready (not when {@link terminate} stops it).
   * @param script the worker's entry (default {@link defaultWorkerScript}).
   */
  constructor(
    init: WorkerInit,
    private readonly onCrash: (worker: ScoringWorker, error: FeatureflowError) => void,
    script = defaultWorkerScript(),
  ) {
    this.model = init.model;
    this.worker = spawn(script, init);
    let onReady!: (ready: WorkerReady) => void;
    let onFailed!: (error: Error) => void;
    this.ready = new Promise<WorkerReady>((resolve, reject) => {
      onReady = resolve;
      onFailed = reject;
    });
    this.failStart = onFailed;
    // A failure seen only by a caller that never awaits ready must not become an unhandled rejection.
    this.ready.catch(() => undefined);
    this.worker.on('message', (message: StartMessage | ResultMessage) => {
      if (this.dead) return;
      if (message.type === 'ready') {
        this.started = true;
        const { type: _type, ...ready } = message;
        onReady(ready);
      } else if (message.type === 'failed') {
        this.dead = true;
        onFailed(modelLoadError(`the model cannot be loaded: ${message.message}`));
        void this.worker.terminate();
      } else {
        const pending = this.pending.get(message.id);
        if (!pending) return;
        this.pending.delete(message.id);
        if (message.type === 'result') pending.resolve({ outputs: message.outputs, shapes: message.shapes });
        else pending.reject(batchFailedError(message.message));
      }
    });
    this.worker.on('error', (error) => {
      this.lastError = error;
    });
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        resolve();
        if (!this.dead) this.die(this.lastError ?? new Error(`it exited with code ${code}`));
      });
    });
  }

  /** False once the worker died or was stopped. */
  get alive(): boolean {
    return !this.dead;
  }

  /** True when the model is loaded and the worker holds fewer than {@link BATCHES_IN_FLIGHT} batches. */
  get accepting(): boolean {
    return this.started && !this.dead && this.pending.size < BATCHES_IN_FLIGHT;
  }

  /** Runs one micro-batch; the input arrays are transferred (unusable afterwards). After {@link ready}, while {@link accepting}. */
  run(batch: Omit<PredictMessage, 'type' | 'id'>): Promise<BatchOutputs> {
    if (this.dead) return Promise.reject(workerDiedError(new Error('it was gone before the batch was sent')));
    const id = nextId++;
    return new Promise<BatchOutputs>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const message: PredictMessage = { type: 'predict', id, ...batch };
      this.worker.postMessage(
        message,
        batch.inputs.map((a) => a.buffer as ArrayBuffer),
      );
    });
  }

  /** Ends the worker as a crash would: the batches it holds are rejected with `FF_SCORER_FAILED`, `onCrash` is called. */
  kill(): Promise<void> {
    if (!this.dead) this.die(new Error('the worker was killed'));
    return this.exited;
  }

  /** Stops the worker (no crash is reported); idempotent. */
  async terminate(): Promise<void> {
    if (!this.dead) {
      const closed = scorerClosedError(this.model, 'was closed before these examples were scored');
      if (!this.started) this.failStart(closed);
      this.rejectPending(closed);
    }
    this.stopping = true;
    this.dead = true;
    await this.worker.terminate();
    await this.exited;
  }

  /** A crash: before the model loaded it fails {@link ready}; after, it rejects the batches held and reports the crash. */
  private die(cause: Error): void {
    this.dead = true;
    void this.worker.terminate();
    if (!this.started) {
      this.failStart(modelLoadError(`the scoring worker died before the model loaded (${cause.message})`, cause));
      return;
    }
    const error = workerDiedError(cause);
    this.rejectPending(error);
    if (!this.stopping) this.onCrash(this, error);
  }

  private rejectPending(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
  }
}
