/**
 * Issue 12: predictions per second through the TF.js scorer's `score()`, with many concurrent callers
 * each scoring one example at a time, against bare `model.predict` on batches of 64 in this process
 * on the same backend (wasm). Small models on 28×28 inputs: an MLP and a CNN. Runs alternate; medians
 * of five.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { entity, featureService, featureView, tensor } from '../framework/features/index.js';
import { saveModel, TfjsScorer } from '../scorers/tfjs/index.js';
import { median } from './lib/stats.js';
import { ratioResult, type BenchResult } from './lib/types.js';

const EXAMPLES = Number(process.env.FF_BENCH_SCORER_EXAMPLES ?? 10_000);
const CALLERS = Number(process.env.FF_BENCH_SCORER_CALLERS ?? 256);
const BATCH = 64;
const RUNS = 5;

const view = featureView({
  name: 'bench_digits',
  version: 1,
  entity: entity({ name: 'bench_image', keys: ['id'] }),
  source: 'bench_digits',
  features: { pixels: tensor('float32', [28, 28]) },
});
const service = featureService({ name: 'bench_digit_classifier', features: [view] });

function mlp(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28] }),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

function cnn(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

/** Bare model.predict on batches of 64 (input tensor built from flat floats, output read back): predictions/s. */
async function bare(model: tf.LayersModel, examples: readonly Float32Array[]): Promise<number> {
  const shape = model.inputs[0]!.shape.slice(1) as number[];
  const started = performance.now();
  for (let at = 0; at < examples.length; at += BATCH) {
    const batch = examples.slice(at, at + BATCH);
    const flat = new Float32Array(batch.length * 784);
    for (let i = 0; i < batch.length; i++) flat.set(batch[i]!, i * 784);
    const x = tf.tensor(flat, [batch.length, ...shape]);
    const y = model.predict(x) as tf.Tensor;
    await y.data();
    x.dispose();
    y.dispose();
  }
  return examples.length / ((performance.now() - started) / 1000);
}

/** CALLERS concurrent callers, each scoring one example per score() call until all are scored: predictions/s. */
async function throughScorer(scorer: TfjsScorer, examples: readonly Float32Array[]): Promise<number> {
  let next = 0;
  const caller = async () => {
    while (next < examples.length) await scorer.score([[examples[next++]!]]);
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, caller));
  return examples.length / ((performance.now() - started) / 1000);
}

async function measure(
  label: string,
  model: tf.LayersModel,
  workers: number,
  dir: string,
  examples: readonly Float32Array[],
): Promise<BenchResult> {
  const path = join(dir, `${label}-${workers}`);
  await saveModel(model, path);
  const scorer = new TfjsScorer({ path, service, workers, maxBatch: BATCH, backend: 'wasm' });
  await scorer.open();
  try {
    // Warm-up of both (wasm compiles kernels on first use).
    await bare(model, examples.slice(0, 4 * BATCH));
    await throughScorer(scorer, examples.slice(0, 4 * BATCH));
    const ours: number[] = [];
    const reference: number[] = [];
    const before = scorer.stats;
    for (let i = 0; i < RUNS; i++) {
      reference.push(await bare(model, examples));
      ours.push(await throughScorer(scorer, examples));
    }
    const batches = scorer.stats.batches - before.batches;
    const mean = (scorer.stats.examples - before.examples) / batches;
    return ratioResult(
      {
        name: `${label}: score() ${CALLERS} concurrent single-example callers, ${workers} worker${workers > 1 ? 's' : ''} (mean batch ${mean.toFixed(1)})`,
        value: median(ours),
        unit: 'predictions/s',
        reference: {
          name: `bare model.predict, batches of ${BATCH}, main thread`,
          value: median(reference),
          unit: 'predictions/s',
        },
      },
      { atLeast: 0.7 },
    );
  } finally {
    await scorer.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  // The same backend as the scorer's workers, for the reference.
  setWasmPaths(`${dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'))}/`);
  await tf.setBackend('wasm');
  tf.enableProdMode();
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const examples = Array.from({ length: EXAMPLES }, () => Float32Array.from({ length: 784 }, random));
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-bench-scorer-'));
  try {
    const small = mlp();
    const conv = cnn();
    return [
      await measure('MLP 784-128-10', small, 1, dir, examples),
      await measure('CNN conv8-pool-dense10', conv, 1, dir, examples),
      await measure('CNN conv8-pool-dense10', conv, 2, dir, examples),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
