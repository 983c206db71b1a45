import pino, { type Logger } from 'pino';
import { FeatureflowError } from '../../framework/errors.js';
import type { ModelInfo, Scorer, ScoringInput, ScoringOutput } from '../../framework/interfaces/scorer.js';
import { checkExample, packInputs, planInputs, type ModelPlan } from './input-plan.js';
import { readModelFiles } from './model-files.js';
import { ScoringWorker, type BatchOutputs, type WorkerReady } from './scoring-worker.js';
import { scorerClosedError as closedError } from './tfjs-errors.js';
import { resolveTfjsScorerConfig, type ResolvedTfjsScorerConfig, type TfjsScorerConfig } from './tfjs-config.js';
import type { TensorSpec, WorkerInit } from './tfjs-protocol.js';

/** One `score()` call: its results fill in as the micro-batches holding its examples return. */
interface Call {
  readonly results: ScoringOutput[];
  remaining: number;
  settled: boolean;
  readonly resolve: (results: ScoringOutput[]) => void;
  readonly reject: (error: unknown) => void;
}

interface Job {
  readonly call: Call;
  readonly index: number;
  readonly example: ScoringInput;
}

/** Counters of a scorer's work, for metrics and tests. */
export interface TfjsScorerStats {
  /** Micro-batches the workers ran. */
  readonly batches: number;
  /** Examples scored. */
  readonly examples: number;
  /** Workers restarted after a crash. */
  readonly restarts: number;
  /** The TF.js backend the workers run on (`tensorflow`, `wasm`, `cpu`), once open. */
  readonly backend?: string;
}

const MAX_RESTART_DELAY_MS = 5000;

/** Index of the largest value (the first one on ties). */
function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Scores a feature service's examples with a TF.js model (layers or graph) in worker threads.
 * `score()` queues examples; a worker with room takes up to `maxBatch` of them at once, so calls that
 * arrive together share one run of the model (it holds up to two such batches, running one while the
 * next waits). An example's values are read when a worker takes it: do not change them before the
 * call settles. A worker that crashes rejects the examples it held with `FF_SCORER_FAILED` and is
 * restarted.
 *
 * @example
 * const scorer = new TfjsScorer({ path: 'models/digits', service: digitClassifier, labels: [...'0123456789'] });
 * await scorer.open();
 * const [prediction] = await scorer.score([[pixels]]); // { output, argmax, label }
 * await scorer.close();
 */
export class TfjsScorer implements Scorer {
  readonly config: ResolvedTfjsScorerConfig;
  private readonly logger: Logger;
  private state: 'new' | 'open' | 'closed' = 'new';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private info: ModelInfo | undefined;
  private plan: ModelPlan | undefined;
  private labels: readonly string[] | undefined;
  private init: WorkerInit | undefined;
  private workers: ScoringWorker[] = [];
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private restartFailures = 0;
  private jobs: Job[] = [];
  private head = 0;
  private counters = { batches: 0, examples: 0, restarts: 0 };
  private backend: string | undefined;

  /** @param logger default: silent. */
  constructor(config: TfjsScorerConfig | ResolvedTfjsScorerConfig, logger?: Logger) {
    // Resolving a resolved configuration again changes nothing.
    this.config = resolveTfjsScorerConfig(config);
    this.logger = (logger ?? pino({ level: 'silent' })).child({ component: 'tfjs-scorer', model: this.config.name });
  }

  /** Name, version (configured, from manifest.json, or the files' hash) and service. After {@link open}. */
  get model(): ModelInfo {
    if (!this.info) throw closedError(this.config.name, 'is not open: call open() before reading its model info');
    return this.info;
  }

  get queued(): number {
    return this.jobs.length - this.head;
  }

  /** Counters of the work done so far. Any time. */
  get stats(): TfjsScorerStats {
    return { ...this.counters, ...(this.backend ? { backend: this.backend } : {}) };
  }

  open(): Promise<void> {
    this.opening ??= this.load().catch((error: unknown) => {
      this.opening = undefined;
      throw error;
    });
    return this.opening;
  }

  score(examples: readonly ScoringInput[]): Promise<ScoringOutput[]> {
    if (this.state !== 'open') {
      return Promise.reject(
        closedError(this.config.name, this.state === 'new' ? 'is not open: await open() first' : 'is closed'),
      );
    }
    if (examples.length === 0) return Promise.resolve([]);
    const plan = this.plan!;
    try {
      for (let i = 0; i < examples.length; i++) checkExample(this.config.service, plan.slots, examples[i]!, i);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<ScoringOutput[]>((resolve, reject) => {
      const call: Call = {
        results: new Array<ScoringOutput>(examples.length),
        remaining: examples.length,
        settled: false,
        resolve,
        reject,
      };
      for (let i = 0; i < examples.length; i++) this.jobs.push({ call, index: i, example: examples[i]! });
      this.dispatch();
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Kills worker `index` as a crash would: the examples it holds are rejected with `FF_SCORER_FAILED`
   * and it is restarted. For tests and failure drills.
   */
  async killWorker(index = 0): Promise<void> {
    await this.workers[index]?.kill();
  }

  private async load(): Promise<void> {
    if (this.state === 'closed') throw closedError(this.config.name, 'is closed');
    const files = await readModelFiles(this.config.path);
    if (this.isClosed()) throw closedError(this.config.name, 'was closed while opening');
    this.init = {
      model: this.config.name,
      modelJson: files.modelJson,
      weights: files.weights,
      backend: this.config.backend,
    };
    const workers = Array.from({ length: this.config.workers }, () => this.startWorker());
    this.workers = workers;
    let ready: WorkerReady;
    try {
      [ready] = (await Promise.all(workers.map((w) => w.ready))) as [WorkerReady];
      this.plan = planInputs(this.config.name, this.config.service, ready.inputs);
      this.labels = this.checkLabels(
        ready.outputs,
        this.config.labels ?? files.manifest?.labels,
        this.config.labels ? 'config' : 'manifest',
      );
    } catch (error) {
      await Promise.all(workers.map((w) => w.terminate()));
      this.workers = [];
      throw error;
    }
    if (this.isClosed()) throw closedError(this.config.name, 'was closed while opening');
    const version = this.config.version ?? files.manifest?.version ?? files.digest;
    this.info = Object.freeze({ name: this.config.name, version, service: this.config.service });
    this.backend = ready.backend;
    this.state = 'open';
    this.logger.info(
      {
        version,
        format: ready.format,
        backend: ready.backend,
        ...(ready.fallbacks.length > 0 ? { passedOver: ready.fallbacks } : {}),
        workers: this.config.workers,
        maxBatch: this.config.maxBatch,
      },
      `TF.js scorer open on the ${ready.backend} backend`,
    );
    // A worker that died between loading and now was not restarted yet.
    this.workers.forEach((worker, index) => {
      if (!worker.alive) this.restart(index);
    });
    this.dispatch();
  }

  /** A method, not a field test: close() may run while load() awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Labels must name each output of a classifier (one vector per example). */
  private checkLabels(
    outputs: readonly TensorSpec[],
    labels: readonly string[] | undefined,
    from: 'config' | 'manifest',
  ): readonly string[] | undefined {
    if (!labels) return undefined;
    const shape = outputs.length === 1 ? outputs[0]!.shape : undefined;
    if (outputs.length === 1 && !shape) return labels; // A graph model may not declare it: labels are used where they fit.
    const classes = shape?.length === 2 && typeof shape[1] === 'number' && shape[1] > 0 ? shape[1] : undefined;
    if (classes === labels.length) return labels;
    const where = from === 'config' ? 'the configured labels' : `labels in ${this.config.path}/manifest.json`;
    const model =
      outputs.length === 1
        ? `its output has shape [${shape!.map((d) => d ?? '?').join(', ')}]`
        : `it has ${outputs.length} outputs`;
    const problem =
      classes === undefined
        ? `${where} need a classifier (one output vector per example), and ${model}`
        : `${where} name ${labels.length} classes, and the model's output has ${classes}`;
    throw new FeatureflowError(
      from === 'config' ? 'FF_CONFIG_INVALID' : 'FF_MODEL_LOAD',
      `model ${this.config.name}: ${problem}; give one label per output, in output order, or none`,
    );
  }

  private startWorker(): ScoringWorker {
    return new ScoringWorker(this.init!, (worker, error) => this.onCrash(worker, error));
  }

  private onCrash(worker: ScoringWorker, error: FeatureflowError): void {
    const index = this.workers.indexOf(worker);
    if (index < 0 || this.state !== 'open') return;
    this.counters.restarts++;
    this.logger.error(
      { err: error.cause ?? error, worker: index },
      'a scoring worker died; its examples were rejected; restarting it',
    );
    this.restart(index);
  }

  private restart(index: number): void {
    // Immediately the first time; with backoff while restarted workers keep failing to load.
    const delay = this.restartFailures === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** this.restartFailures);
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (this.state !== 'open') return;
      const worker = this.startWorker();
      this.workers[index] = worker;
      worker.ready.then(
        () => {
          this.restartFailures = 0;
          this.dispatch();
        },
        (error: unknown) => {
          if (this.state !== 'open') return;
          this.restartFailures++;
          this.logger.error(
            { err: error, worker: index },
            'a restarted scoring worker cannot load the model; retrying',
          );
          this.restart(index);
        },
      );
    }, delay);
    this.restartTimers.add(timer);
  }

  /** Hands queued examples to workers that take batches, up to a micro-batch each. */
  private dispatch(): void {
    if (this.state !== 'open') return;
    const limit = Math.min(this.config.maxBatch, this.plan!.fixedBatch ?? Infinity);
    for (const worker of this.workers) {
      while (this.queued > 0 && worker.accepting) {
        const jobs = this.take(limit);
        if (jobs.length > 0) this.run(worker, jobs);
      }
    }
  }

  private take(limit: number): Job[] {
    const taken: Job[] = [];
    while (taken.length < limit && this.head < this.jobs.length) {
      const job = this.jobs[this.head++]!;
      if (!job.call.settled) taken.push(job);
    }
    if (this.head === this.jobs.length) {
      this.jobs = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.jobs.length) {
      this.jobs = this.jobs.slice(this.head);
      this.head = 0;
    }
    return taken;
  }

  private run(worker: ScoringWorker, jobs: Job[]): void {
    const plan = this.plan!;
    const rows = plan.fixedBatch ?? jobs.length;
    let batch: Promise<BatchOutputs>;
    try {
      batch = worker.run({
        rows,
        inputs: packInputs(
          plan,
          jobs.map((j) => j.example),
          rows,
        ),
        shapes: plan.inputs.map((i) => i.shape),
      });
    } catch (error) {
      batch = Promise.reject(error);
    }
    batch
      .then(
        (outputs) => {
          this.counters.batches++;
          this.counters.examples += jobs.length;
          this.deliver(jobs, rows, outputs);
        },
        (error: unknown) => {
          for (const job of jobs) this.fail(job.call, error);
        },
      )
      .finally(() => this.dispatch());
  }

  private deliver(jobs: readonly Job[], rows: number, { outputs, shapes }: BatchOutputs): void {
    const bad = shapes.findIndex((s) => s[0] !== rows);
    if (bad >= 0) {
      const error = new FeatureflowError(
        'FF_SCORER_FAILED',
        `model ${this.config.name}: output ${bad} has shape [${shapes[bad]!.join(', ')}] for a batch of ${rows}; a scored model must keep the batch dimension first in every output`,
      );
      for (const job of jobs) this.fail(job.call, error);
      return;
    }
    const sizes = shapes.map((s) => s.slice(1).reduce((a, b) => a * b, 1));
    const total = sizes.reduce((a, b) => a + b, 0);
    const classifier = outputs.length === 1 && shapes[0]!.length === 2 && sizes[0]! > 1;
    for (let r = 0; r < jobs.length; r++) {
      const { call, index } = jobs[r]!;
      if (call.settled) continue;
      let output: Float32Array;
      if (outputs.length === 1) {
        output = outputs[0]!.slice(r * total, (r + 1) * total);
      } else {
        // Several outputs: each example's parts, concatenated in output order.
        output = new Float32Array(total);
        let at = 0;
        outputs.forEach((o, k) => {
          output.set(o.subarray(r * sizes[k]!, (r + 1) * sizes[k]!), at);
          at += sizes[k]!;
        });
      }
      let result: ScoringOutput = { output };
      if (classifier) {
        const best = argmax(output);
        const label = this.labels?.[best];
        result = label === undefined ? { output, argmax: best } : { output, argmax: best, label };
      }
      call.results[index] = result;
      if (--call.remaining === 0) {
        call.settled = true;
        call.resolve(call.results);
      }
    }
  }

  private fail(call: Call, error: unknown): void {
    if (call.settled) return;
    call.settled = true;
    call.reject(error);
  }

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    const closed = closedError(this.config.name, 'was closed before these examples were scored');
    for (let i = this.head; i < this.jobs.length; i++) this.fail(this.jobs[i]!.call, closed);
    this.jobs = [];
    this.head = 0;
    // Terminating rejects each running batch with FF_SCORER_CLOSED.
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.logger.info('TF.js scorer closed');
  }
}
