import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, test } from 'vitest';
import {
  batchesOf,
  copyDigits,
  DIGITS_MODEL_DIR,
  defineDigitsView,
  loadMnistDigits,
  PACKAGE_SPLIT,
} from '../features/digits/index.js';
import { trainDigitClassifier } from '../features/digits/train-digits.js';
import { useWasmForTraining } from '../features/digits/wasm-training-kernels.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { readModelFiles } from '../scorers/tfjs/model-files.js';
import { pgClient, randomName, testConfig } from './helpers.js';

// The digit classifier: trained from PostgreSQL through featureflow's training-set export, and the
// model shipped with the example judged again on the digits it was held out from.

async function loadModel(dir: string): Promise<tf.LayersModel> {
  const files = await readModelFiles(dir);
  const json = files.modelJson as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
      weightData: files.weights,
    }),
  );
}

/** Share of `digits` the model classifies right, the labels being the oracle. */
function accuracy(model: tf.LayersModel, digits: ReturnType<typeof loadMnistDigits>): number {
  const x = new Float32Array(digits.length * 784);
  digits.forEach((d, i) => {
    for (let k = 0; k < 784; k++) x[i * 784 + k] = d.pixels[k]! / 255;
  });
  const predicted = tf.tidy(() => (model.predict(tf.tensor4d(x, [digits.length, 28, 28, 1])) as tf.Tensor).argMax(1));
  const p = predicted.dataSync();
  predicted.dispose();
  return digits.filter((d, i) => p[i] === d.label).length / digits.length;
}

describe('the digit classifier', () => {
  test('shipped in features/digits/model classifies at least 97% of the 2,000 held-out digits right, as its manifest says', async () => {
    await useWasmForTraining();
    const manifest = JSON.parse(readFileSync(join(DIGITS_MODEL_DIR, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      split: PACKAGE_SPLIT,
      trainingSet: { rows: 8000, views: [{ name: 'digits', version: 1, features: ['pixels', 'label'] }] },
    });
    expect(manifest.trainingSet.views[0].fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.trainingSet.lsnWatermark).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const model = await loadModel(DIGITS_MODEL_DIR);
    const heldOut = loadMnistDigits().slice(PACKAGE_SPLIT.heldOut.from - 1, PACKAGE_SPLIT.heldOut.to);
    const measured = accuracy(model, heldOut);
    expect(measured).toBeGreaterThanOrEqual(0.97);
    expect(measured).toBeCloseTo(manifest.heldOut.accuracy, 4);
    model.dispose();
  });

  test('trains from PostgreSQL through a point-in-time export; the manifest names the view, its fingerprint and the position', async () => {
    const schema = randomName('digits');
    const client = await pgClient();
    await client.query(
      `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.digits (id int PRIMARY KEY, label int, pixels bytea)`,
    );
    const digits = loadMnistDigits().slice(0, 1200);
    await copyDigits(client, batchesOf(digits), { table: `${schema}.digits` });
    const view = defineDigitsView(`${schema}.digits`);
    const config = testConfig([`${schema}.digits`], { features: { views: [view] } });
    const container = await createContainer(config);
    const out = join(mkdtempSync(join(tmpdir(), 'featureflow-digits-')), 'model');
    try {
      await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
      // Changes committed after the training set's time are not in it: labels of ids 1-100 are erased later.
      const asOf = new Date();
      await client.query(`UPDATE ${schema}.digits SET label = NULL WHERE id <= 100`);
      await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
      const store = await container.getAsync(TOKENS.OfflineStore);
      const [status] = await store.status();
      const result = await trainDigitClassifier({
        store,
        view,
        out,
        asOf,
        epochs: 2,
        split: { name: 'test', train: { from: 1, to: 1000 }, heldOut: { from: 1001, to: 1200 } },
      });
      // All 1,000 labelled as of `asOf` (the later NULL labels would have dropped 100).
      expect(result.trainExamples).toBe(1000);
      expect(result.heldOutExamples).toBe(200);
      // Far above chance (10%) after two epochs on 1,000 digits; the figure is measured on the oracle too.
      expect(result.heldOutAccuracy).toBeGreaterThan(0.6);
      const model = await loadModel(out);
      expect(accuracy(model, digits.slice(1000))).toBeCloseTo(result.heldOutAccuracy, 4);
      model.dispose();
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
      expect(manifest.trainingSet).toMatchObject({
        rows: 1000,
        asOf: asOf.toISOString(),
        views: [{ name: 'digits', version: 1, features: ['pixels', 'label'] }],
      });
      expect(manifest.trainingSet.views[0].fingerprint).toMatch(/^[0-9a-f]{64}$/);
      expect(manifest.trainingSet.lsnWatermark).toBe(status!.watermark);
      expect(manifest.heldOut).toEqual({ examples: 200, accuracy: Math.round(result.heldOutAccuracy * 10000) / 10000 });

      // Held-out ids without labelled digits (the demo's, inserted later unlabelled) cannot judge a model.
      await expect(
        trainDigitClassifier({
          store,
          view,
          out: join(out, '..', 'unjudged'),
          epochs: 1,
          split: { name: 'none held out', train: { from: 101, to: 300 }, heldOut: { from: 5001, to: 5100 } },
        }),
      ).rejects.toMatchObject({ code: 'FF_DIGITS_DATA', message: expect.stringMatching(/held-out ids 5001-5100/) });
    } finally {
      await closeContainer(container);
      await client.end();
    }
  }, 300_000);
});
