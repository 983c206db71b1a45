import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FeatureflowError } from '../framework/errors.js';
import {
  entity,
  featureService,
  featureView,
  float32,
  int32,
  tensor,
  text,
  type FeatureService,
} from '../framework/features/index.js';
import type { ScoringInput, ScoringOutput } from '../framework/interfaces/scorer.js';
import { digitClassifier } from '../features/digits/index.js';
import { saveModel, tfjs, TfjsScorer } from '../scorers/tfjs/index.js';
import { readModelFiles } from '../scorers/tfjs/model-files.js';
import { BATCHES_IN_FLIGHT, ScoringWorker } from '../scorers/tfjs/scoring-worker.js';
import { waitFor } from './helpers.js';

// Real TF.js in real worker threads (wasm backend there), checked against model.predict run here (cpu).

tf.enableProdMode();

const image = entity({ name: 'image', keys: ['id'] });
const images = featureView({
  name: 'images',
  version: 1,
  entity: image,
  source: 'images',
  features: {
    pixels: tensor('float32', [28, 28]),
    brightness: float32,
    caption: text,
    small: tensor('float32', [14, 14]),
    digit: int32,
  },
});
/** pixels then brightness: 784 + 1 values. */
const pixelsAndBrightness = featureService({
  name: 'pixels_brightness',
  features: [images.select('pixels', 'brightness')],
});
/** The same features in the other order (multi-input models match them by name). */
const brightnessAndPixels = featureService({
  name: 'brightness_pixels',
  features: [images.select('brightness', 'pixels')],
});

const LABELS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

let seed = 7;
const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
const pixels = () => Float32Array.from({ length: 784 }, random);

const root = mkdtempSync(join(tmpdir(), 'featureflow-tfjs-'));
const dirs = {
  mlp: join(root, 'mlp'),
  cnn: join(root, 'cnn'),
  multi: join(root, 'multi'),
  graph: join(root, 'graph'),
  embed: join(root, 'embed'),
};
let mlp: tf.LayersModel;
let cnn: tf.LayersModel;
let multi: tf.LayersModel;
let graph: tf.GraphModel;
let embed: tf.LayersModel;

/** A dense model on 785 values: the [28, 28] pixels flattened, then the brightness. */
function buildMlp(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [785], units: 16, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return model;
}

/** A small CNN on [28, 28, 1] images. */
function buildCnn(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3, activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return model;
}

/** Two inputs named after the features, in the opposite order to `brightnessAndPixels`. */
function buildMulti(): tf.LayersModel {
  const px = tf.input({ shape: [28, 28], name: 'pixels' });
  const br = tf.input({ shape: [1], name: 'brightness' });
  const flat = tf.layers.flatten().apply(px) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate().apply([flat, br]) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: [px, br], outputs: out });
}

/** An int32 input (a digit) through an embedding. */
function buildEmbed(): tf.LayersModel {
  const digit = tf.input({ shape: [1], dtype: 'int32', name: 'digit' });
  const embedded = tf.layers.embedding({ inputDim: 10, outputDim: 4 }).apply(digit) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(embedded) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax' }).apply(flat) as tf.SymbolicTensor;
  return tf.model({ inputs: digit, outputs: out });
}

/**
 * The graph tensorflowjs_converter makes of a Keras MLP (Placeholder → MatMul → BiasAdd → Relu →
 * MatMul → BiasAdd → Softmax), written by hand from a layers model's weights: no Python here.
 */
async function buildGraph(): Promise<{ graph: tf.GraphModel; twin: tf.LayersModel }> {
  const twin = tf.sequential();
  twin.add(tf.layers.dense({ inputShape: [784], units: 12, activation: 'relu' }));
  twin.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  const [w1, b1, w2, b2] = twin.getWeights() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const float = { type: 'DT_FLOAT' };
  const constant = (name: string, t: tf.Tensor) => ({
    name,
    op: 'Const',
    attr: {
      value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: t.shape.map((d) => ({ size: String(d) })) } } },
      dtype: float,
    },
  });
  const matmul = (name: string, a: string, b: string) => ({
    name,
    op: 'MatMul',
    input: [a, b],
    attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } },
  });
  const biasAdd = (name: string, a: string, b: string) => ({
    name,
    op: 'BiasAdd',
    input: [a, b],
    attr: { T: float, data_format: { s: btoa('NHWC') } },
  });
  const node = [
    {
      name: 'pixels',
      op: 'Placeholder',
      attr: { dtype: float, shape: { shape: { dim: [{ size: '-1' }, { size: '784' }] } } },
    },
    constant('w1', w1),
    constant('b1', b1),
    constant('w2', w2),
    constant('b2', b2),
    matmul('mm1', 'pixels', 'w1'),
    biasAdd('ba1', 'mm1', 'b1'),
    { name: 'relu', op: 'Relu', input: ['ba1'], attr: { T: float } },
    matmul('mm2', 'relu', 'w2'),
    biasAdd('ba2', 'mm2', 'b2'),
    { name: 'probs', op: 'Softmax', input: ['ba2'], attr: { T: float } },
  ];
  const weights = [w1, b1, w2, b2].map((t) => t.dataSync() as Float32Array);
  const data = new Float32Array(weights.reduce((n, w) => n + w.length, 0));
  weights.reduce((at, w) => (data.set(w, at), at + w.length), 0);
  const graph = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: { node, versions: { producer: 1 } },
      format: 'graph-model',
      weightSpecs: ['w1', 'b1', 'w2', 'b2'].map((name, i) => ({
        name,
        shape: [w1, b1, w2, b2][i]!.shape,
        dtype: 'float32' as const,
      })),
      weightData: data.buffer,
    }),
  );
  return { graph, twin };
}

/** model.predict on the examples, here, one output array per example. */
function reference(model: tf.LayersModel | tf.GraphModel, inputs: tf.Tensor | tf.Tensor[]): Float32Array[] {
  const y = model.predict(inputs) as tf.Tensor;
  const [n, k] = y.shape as [number, number];
  const data = y.dataSync() as Float32Array;
  y.dispose();
  return Array.from({ length: n }, (_, i) => data.slice(i * k, (i + 1) * k));
}

function expectClose(
  actual: readonly ScoringOutput[],
  expected: readonly Float32Array[],
  labels?: readonly string[],
): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((out, i) => {
    const want = expected[i]!;
    expect(out.output.length, `example ${i}`).toBe(want.length);
    let worst = 0;
    for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(out.output[k]! - want[k]!));
    expect(worst, `example ${i}: largest difference`).toBeLessThan(1e-5);
    const best = want.indexOf(Math.max(...want));
    expect(out.argmax, `example ${i}: argmax`).toBe(best);
    expect(out.label).toBe(labels?.[best]);
  });
}

async function expectCode(
  promise: Promise<unknown>,
  code: string,
  ...parts: (string | RegExp)[]
): Promise<FeatureflowError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FeatureflowError);
  expect((error as FeatureflowError).code).toBe(code);
  for (const part of parts) expect((error as Error).message).toMatch(part);
  return error as FeatureflowError;
}

beforeAll(async () => {
  mlp = buildMlp();
  cnn = buildCnn();
  // A few steps of training, so that the CNN's outputs are not the untrained near-uniform ones.
  const xs = tf.tensor(Float32Array.from({ length: 64 * 784 }, random), [64, 28, 28, 1]);
  const ys = tf.oneHot(
    tf.tensor1d(
      Int32Array.from({ length: 64 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  cnn.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  await cnn.fit(xs, ys, { epochs: 3, batchSize: 16, verbose: 0 });
  xs.dispose();
  ys.dispose();
  multi = buildMulti();
  const built = await buildGraph();
  graph = built.graph;
  await saveModel(mlp, dirs.mlp);
  await saveModel(cnn, dirs.cnn, { version: 'cnn-2024-06-01', labels: LABELS, trainedOn: 'random pixels' });
  await saveModel(multi, dirs.multi, { version: 'multi-1' });
  await saveModel(graph, dirs.graph);
  embed = buildEmbed();
  await saveModel(embed, dirs.embed);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('TF.js scorer', () => {
  test('a layers model on a [28, 28] tensor and a float32 feature: outputs equal model.predict, argmax, version from the files', async () => {
    const scorer = new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness });
    await scorer.open();
    try {
      const examples: ScoringInput[] = Array.from({ length: 20 }, () => [pixels(), random()]);
      const x = tf.tensor2d(examples.map(([p, b]) => [...(p as Float32Array), b as number]));
      const outputs = await scorer.score(examples);
      expectClose(outputs, reference(mlp, x));
      // No manifest: named after its directory, versioned by a hash of model.json and the weights.
      const files = await readModelFiles(dirs.mlp);
      expect(scorer.model).toEqual({ name: 'mlp', version: files.digest, service: pixelsAndBrightness });
      expect(files.digest).toMatch(/^[0-9a-f]{12}$/);
      expect(scorer.stats.backend).toBe('wasm');
    } finally {
      await scorer.close();
    }
  });

  test('a CNN takes the [28, 28] feature as [null, 28, 28, 1]; labels and version come from manifest.json', async () => {
    const scorer = tfjs({ path: dirs.cnn, service: digitClassifier, workers: 2 }).create();
    await scorer.open();
    try {
      const examples: ScoringInput[] = Array.from({ length: 50 }, () => [pixels()]);
      const x = tf.tensor4d(Float32Array.from(examples.flatMap(([p]) => [...(p as Float32Array)])), [50, 28, 28, 1]);
      const expected = reference(cnn, x);
      expectClose(await scorer.score(examples), expected, LABELS);
      // Its outputs differ from example to example (the arg-max of a small CNN on random pixels may
      // be one class for all 50), so equal outputs are not equal by accident.
      expect(
        new Set(expected.map((e) => Array.from(e, (v) => v.toFixed(5)).join(','))).size,
        'the trained CNN tells examples apart',
      ).toBeGreaterThan(40);
      expect(scorer.model.version).toBe('cnn-2024-06-01');
      expect(scorer.model.name).toBe('cnn');
    } finally {
      await scorer.close();
    }
  });

  test('configured labels and version win over manifest.json', async () => {
    const labels = LABELS.map((l) => l.toUpperCase());
    const scorer = new TfjsScorer({ path: dirs.cnn, service: digitClassifier, name: 'digits', version: 'v7', labels });
    await scorer.open();
    try {
      const [out] = await scorer.score([[pixels()]]);
      expect(out!.label).toBe(labels[out!.argmax!]);
      expect(scorer.model).toMatchObject({ name: 'digits', version: 'v7' });
    } finally {
      await scorer.close();
    }
  });

  test('a model with several inputs gets each feature by name, whatever the service order', async () => {
    const scorer = new TfjsScorer({ path: dirs.multi, service: brightnessAndPixels });
    await scorer.open();
    try {
      const examples: ScoringInput[] = Array.from({ length: 10 }, () => [random(), pixels()]);
      const px = tf.tensor3d(Float32Array.from(examples.flatMap(([, p]) => [...(p as Float32Array)])), [10, 28, 28]);
      const br = tf.tensor2d(examples.map(([b]) => [b as number]));
      expectClose(await scorer.score(examples), reference(multi, [px, br]));
    } finally {
      await scorer.close();
    }
  });

  test('a graph model loads and scores like the layers model it was made from', async () => {
    expect(JSON.parse(readFileSync(join(dirs.graph, 'model.json'), 'utf8')).format).toBe('graph-model');
    const scorer = new TfjsScorer({ path: dirs.graph, service: digitClassifier, labels: LABELS });
    await scorer.open();
    try {
      const examples: ScoringInput[] = Array.from({ length: 30 }, () => [pixels()]);
      const x = tf.tensor2d(Float32Array.from(examples.flatMap(([p]) => [...(p as Float32Array)])), [30, 784]);
      expectClose(await scorer.score(examples), reference(graph, x), LABELS);
    } finally {
      await scorer.close();
    }
  });

  test('a service whose tensor has another shape fails at open, naming the feature and both shapes', async () => {
    const smallService = featureService({ name: 'small_digits', features: [images.select('small')] });
    const scorer = new TfjsScorer({ path: dirs.cnn, service: smallService });
    await expectCode(
      scorer.open(),
      'FF_MODEL_INPUT',
      'images.small',
      'tensor<float32>[14,14] (196 values)',
      '[28, 28, 1] (784 values)',
      'small_digits',
    );
    await scorer.close();
    // One value too many for the flat input of the MLP.
    const tooMany = featureService({ name: 'too_many', features: [images.select('pixels', 'brightness', 'digit')] });
    await expectCode(
      new TfjsScorer({ path: dirs.mlp, service: tooMany }).open(),
      'FF_MODEL_INPUT',
      '[785] (785 values)',
      'images.digit int32 (1 value)',
      '786 values',
    );
    // A multi-input model needs every input matched by name.
    await expectCode(
      new TfjsScorer({ path: dirs.multi, service: digitClassifier }).open(),
      'FF_MODEL_INPUT',
      /input brightness matches no feature/,
    );
  });

  test('an int32 input takes an int32 feature, and refuses a float32 one', async () => {
    const digits = featureService({ name: 'digit_only', features: [images.select('digit')] });
    const scorer = new TfjsScorer({ path: dirs.embed, service: digits });
    await scorer.open();
    try {
      const examples: ScoringInput[] = Array.from({ length: 10 }, (_, i) => [i]);
      expectClose(
        await scorer.score(examples),
        reference(
          embed,
          tf.tensor2d(
            examples.map(([d]) => [d as number]),
            [10, 1],
            'int32',
          ),
        ),
      );
    } finally {
      await scorer.close();
    }
    const brightness = featureService({ name: 'brightness_only', features: [images.select('brightness')] });
    await expectCode(
      new TfjsScorer({ path: dirs.embed, service: brightness }).open(),
      'FF_MODEL_INPUT',
      'its input digit takes int32 and feature images.brightness is float32',
    );
  });

  test('text features are refused at open', async () => {
    const captioned = featureService({ name: 'captioned', features: [images.select('pixels', 'caption')] });
    await expectCode(
      new TfjsScorer({ path: dirs.mlp, service: captioned }).open(),
      'FF_MODEL_INPUT',
      'feature images.caption is text',
    );
  });

  test('a directory without a model, truncated weights, a backend that cannot load and labels that do not fit fail at open', async () => {
    await expectCode(
      new TfjsScorer({ path: join(root, 'nothing'), service: digitClassifier }).open(),
      'FF_MODEL_LOAD',
      /has no model\.json/,
    );
    const truncated = join(root, 'truncated');
    cpSync(dirs.mlp, truncated, { recursive: true });
    truncateSync(join(truncated, 'weights.bin'), 100);
    await expectCode(
      new TfjsScorer({ path: truncated, service: pixelsAndBrightness }).open(),
      'FF_MODEL_LOAD',
      /hold 100 bytes and its manifest needs \d+/,
    );
    // @tensorflow/tfjs-node cannot be installed here (its install downloads libtensorflow).
    await expectCode(
      new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness, backend: 'node' }).open(),
      'FF_MODEL_LOAD',
      /backend 'node' needs @tensorflow\/tfjs-node/,
    );
    await expectCode(
      new TfjsScorer({ path: dirs.cnn, service: digitClassifier, labels: ['a', 'b'] }).open(),
      'FF_CONFIG_INVALID',
      /name 2 classes.*has 10/,
    );
  });

  test('bad configuration values are refused, naming the field and the fix', () => {
    const bad = (config: object, ...parts: RegExp[]) => {
      let error: unknown;
      try {
        tfjs({ path: dirs.mlp, service: digitClassifier, ...config });
      } catch (e) {
        error = e;
      }
      expect((error as FeatureflowError).code).toBe('FF_CONFIG_INVALID');
      for (const part of parts) expect((error as Error).message).toMatch(part);
    };
    bad({ workers: 0 }, /workers must be an integer from 1 to 64, got 0/);
    bad(
      { maxBatch: 1.5, backend: 'gpu' },
      /maxBatch must be an integer/,
      /backend must be one of 'auto', 'node', 'wasm', 'cpu', got "gpu"/,
    );
    bad({ labels: [] }, /labels must be a non-empty array of strings/);
    bad({ service: {} as FeatureService }, /service must be a feature service/);
    const model = tfjs({ path: dirs.mlp, service: pixelsAndBrightness });
    expect(model.kind).toBe('scorer');
    expect(model.config).toMatchObject({ name: 'mlp', workers: 1, maxBatch: 64, backend: 'auto' });
    expect(Object.isFrozen(model.config)).toBe(true);
  });

  test('an example that does not fit is refused with the feature named', async () => {
    const scorer = new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness });
    await scorer.open();
    try {
      await expectCode(
        scorer.score([[pixels(), null]]),
        'FF_MODEL_INPUT',
        'example 0',
        'feature images.brightness is null',
      );
      await expectCode(
        scorer.score([
          [pixels(), 1],
          [new Float32Array(10), 1],
        ]),
        'FF_MODEL_INPUT',
        'example 1',
        'images.pixels is 10 values long',
      );
      await expectCode(scorer.score([[pixels()]]), 'FF_MODEL_INPUT', 'it has 1 value', '2 features');
      expect(await scorer.score([])).toEqual([]);
    } finally {
      await scorer.close();
    }
  });

  test('1000 single-example calls at once all resolve correctly, in far fewer batches', async () => {
    const scorer = new TfjsScorer({ path: dirs.cnn, service: digitClassifier, maxBatch: 64 });
    await scorer.open();
    try {
      const examples = Array.from({ length: 1000 }, () => pixels());
      const x = tf.tensor4d(Float32Array.from(examples.flatMap((p) => [...p])), [1000, 28, 28, 1]);
      const expected = reference(cnn, x);
      const outputs = await Promise.all(examples.map((p) => scorer.score([[p]])));
      expectClose(
        outputs.map((o) => o[0]!),
        expected,
        LABELS,
      );
      const { batches, examples: scored } = scorer.stats;
      expect(scored).toBe(1000);
      // The first calls go out alone (the worker takes BATCHES_IN_FLIGHT batches); the rest queue and go 64 at a time.
      expect(batches).toBeLessThanOrEqual(BATCHES_IN_FLIGHT + Math.ceil(1000 / 64));
      expect(scorer.queued).toBe(0);
    } finally {
      await scorer.close();
    }
  });

  test('close() is idempotent and later calls are refused', async () => {
    const scorer = new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness });
    await expectCode(scorer.score([[pixels(), 1]]), 'FF_SCORER_CLOSED', /not open/);
    expect(() => scorer.model).toThrow(/not open/);
    await scorer.open();
    // Closed while its examples wait: rejected, not left hanging.
    const pending = expectCode(scorer.score(Array.from({ length: 500 }, () => [pixels(), 1])), 'FF_SCORER_CLOSED');
    const first = scorer.close();
    expect(scorer.close()).toBe(first);
    await first;
    await scorer.close();
    await pending;
    await expectCode(scorer.score([[pixels(), 1]]), 'FF_SCORER_CLOSED', /is closed/);
    // Closing a scorer that never opened is fine too.
    await new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness }).close();
  });

  test('a worker killed mid-run rejects the examples it held with FF_SCORER_FAILED, restarts, and later calls work', async () => {
    const scorer = new TfjsScorer({ path: dirs.cnn, service: digitClassifier, maxBatch: 16 });
    await scorer.open();
    try {
      const examples = Array.from({ length: 1500 }, () => pixels());
      const settled = examples.map((p) =>
        scorer.score([[p]]).then(
          (o) => ({ ok: true as const, out: o[0]! }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
      );
      await waitFor('a few batches scored', () => scorer.stats.batches >= 3);
      expect(scorer.queued).toBeGreaterThan(0);
      await scorer.killWorker(0);
      const results = await Promise.all(settled);
      const failed = results.filter((r) => !r.ok);
      expect(failed.length).toBeGreaterThan(0);
      // What the worker held: up to BATCHES_IN_FLIGHT micro-batches.
      expect(failed.length).toBeLessThanOrEqual(16 * BATCHES_IN_FLIGHT);
      for (const f of failed) expect((f as { error: FeatureflowError }).error.code).toBe('FF_SCORER_FAILED');
      // Every other example was scored by the restarted worker, correctly.
      const x = tf.tensor4d(Float32Array.from(examples.flatMap((p) => [...p])), [1500, 28, 28, 1]);
      const expected = reference(cnn, x);
      const ok = results.flatMap((r, i) => (r.ok ? [{ out: r.out, want: expected[i]! }] : []));
      expect(ok.length).toBe(1500 - failed.length);
      expectClose(
        ok.map((o) => o.out),
        ok.map((o) => o.want),
        LABELS,
      );
      expect(scorer.stats.restarts).toBe(1);
      expectClose(await scorer.score([[examples[0]!]]), [expected[0]!], LABELS);
    } finally {
      await scorer.close();
    }
  });

  test('the worker also runs as plain JavaScript (the built package)', async () => {
    // Transpile the worker beside a link to node_modules, as the built package would have it.
    const source = fileURLToPath(new URL('../scorers/tfjs/tfjs-worker.ts', import.meta.url));
    const js = ts.transpileModule(readFileSync(source, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    }).outputText;
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-tfjs-js-'));
    try {
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      writeFileSync(join(dir, 'tfjs-worker.js'), js);
      const modules = dirname(
        dirname(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs/package.json'))),
      );
      symlinkSync(modules, join(dir, 'node_modules'));
      const files = await readModelFiles(dirs.mlp);
      const worker = new ScoringWorker(
        { model: 'mlp', modelJson: files.modelJson, weights: files.weights, backend: 'auto' },
        () => undefined,
        pathToFileURL(join(dir, 'tfjs-worker.js')),
      );
      try {
        const ready = await worker.ready;
        expect(ready).toMatchObject({
          backend: 'wasm',
          format: 'layers-model',
          inputs: [{ shape: [null, 785], dtype: 'float32' }],
        });
        const x = Float32Array.from({ length: 2 * 785 }, random);
        const expected = reference(mlp, tf.tensor2d(x, [2, 785]));
        const { outputs, shapes } = await worker.run({ rows: 2, inputs: [x.slice()], shapes: [[785]] });
        expect(shapes).toEqual([[2, 10]]);
        expectClose(
          [0, 1].map((i) => ({
            output: outputs[0]!.slice(i * 10, (i + 1) * 10),
            argmax: expected[i]!.indexOf(Math.max(...expected[i]!)),
          })),
          expected,
        );
      } finally {
        await worker.terminate();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the cpu backend can be chosen', async () => {
    const scorer = new TfjsScorer({ path: dirs.mlp, service: pixelsAndBrightness, backend: 'cpu' });
    await scorer.open();
    try {
      expect(scorer.stats.backend).toBe('cpu');
      const example: ScoringInput = [pixels(), 0.5];
      const x = tf.tensor2d([[...(example[0] as Float32Array), 0.5]]);
      expectClose(await scorer.score([example]), reference(mlp, x));
    } finally {
      await scorer.close();
    }
  });
});
