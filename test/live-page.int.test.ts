import { accessSync, constants, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, onTestFailed, test } from 'vitest';
import { saveModel } from '../index.js';
import { pgClient, randomName, spawnCli, waitFor } from './helpers.js';

// The live page of `featureflow serve` with the digits example, in headless Chromium: a row inserted
// (or updated) in PostgreSQL appears on the page drawn from its pixels, with the prediction the
// server stored for it, and the running accuracy counts it against its label.

tf.enableProdMode();

/** MNIST's digits as 784 values in 0…1, row-major, ink high. */
const mnist = createRequire(import.meta.url)('mnist') as Record<number, { get(): number[] }>;

/** Debian's `chromium` (CI installs it), found on PATH. */
function chromiumPath(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return join(dir, name);
      } catch {}
    }
  }
  throw new Error('no chromium on PATH: install Debian package chromium (.ci/run does)');
}

let client: pg.Client;
let browser: Browser;
beforeAll(async () => {
  client = await pgClient();
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  await client?.end();
});

/** A project serving the digits example over a fresh table, with a 784 → 10 model of random weights. */
async function project(token: string) {
  const table = randomName('digits');
  const predictions = randomName('digit_predictions');
  const slot = randomName('slot');
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, label int, pixels bytea)`);
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-live-page-'));
  const model = tf.sequential();
  model.add(tf.layers.flatten({ inputShape: [28, 28] }));
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  const labels = Array.from({ length: 10 }, (_, i) => String(i));
  await saveModel(model, join(dir, 'model'), { version: 'v1', labels });
  writeFileSync(
    join(dir, 'featureflow.config.ts'),
    [
      `import { defineConfig, featureService, memory, postgres, postgresPredictions, tfjs } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `import { defineDigitsView } from ${JSON.stringify(resolve('dist/features/digits/index.js'))};`,
      `const digits = defineDigitsView('${table}');`,
      `const service = featureService({ name: 'digit_classifier', features: [digits.select('pixels')] });`,
      `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }), online: memory(),`,
      `  model: tfjs({ path: 'model', service, name: 'digits' }), predictions: [postgresPredictions({ table: '${predictions}' })],`,
      `  features: { views: [digits], services: [service] }, serve: { port: 0, token: '${token}' }, ingest: { heartbeatSeconds: 1 } });`,
    ].join('\n'),
  );
  return { dir, table, predictions };
}

/** A digit's pixels as the table stores them: one byte per pixel. */
function digitBytes(digit: number): Buffer {
  return Buffer.from(mnist[digit]!.get().map((v) => Math.round(v * 255)));
}

/** The prediction the server stored for `id` (its newest). */
async function storedPrediction(predictions: string, id: number) {
  // The sink creates its table on its first write (its key columns are typed from the first key).
  const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS e', [predictions]);
  if (!exists.rows[0].e) return undefined;
  const { rows } = await client.query(
    `SELECT label, argmax, position::text AS position FROM ${predictions} WHERE id = $1`,
    [id],
  );
  return rows[0] as { label: string; argmax: number; position: string } | undefined;
}

/** What the page shows for the prediction of `id` at `position`, once its image is drawn: the canvas's red channel. */
async function shown(page: Page, id: number, position: string) {
  const card = page.locator(`article.card[data-key="${JSON.stringify([id])}"][data-position="${position}"]`);
  await card.and(page.locator('[data-image="drawn"]')).waitFor({ timeout: 30_000 });
  return card.evaluate((node: any) => {
    const canvas = node.querySelector('canvas');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const red: number[] = [];
    for (let i = 0; i < data.length; i += 4) red.push(data[i]);
    return {
      predicted: node.dataset.predicted as string,
      truth: node.dataset.truth as string | undefined,
      size: [canvas.width, canvas.height],
      red,
      text: node.querySelector('.predicted').textContent as string,
    };
  });
}

describe('the live page of featureflow serve', () => {
  const token = randomName('token');
  let served: Awaited<ReturnType<typeof project>>;
  let serve: ReturnType<typeof spawnCli>;
  let url: string;
  beforeAll(async () => {
    served = await project(token);
    serve = spawnCli(served.dir, ['serve']);
    await waitFor('serve to start', () => serve.out().includes('serving on'), 60_000);
    url = /serving on (\S+)/.exec(serve.out())![1]!;
    await waitFor('the online store to load', async () => (await fetch(`${url}/health`)).status === 200, 60_000);
  });
  afterAll(async () => {
    if (!serve) return;
    serve.child.kill('SIGTERM');
    await serve.exited;
    await spawnCli(served.dir, ['teardown', '--yes']).exited;
  });

  test('rows inserted and updated in PostgreSQL appear drawn from their pixels, with the stored prediction and the running accuracy', async () => {
    const { table, predictions } = served;
    // What the server said (warnings and errors; never row values) goes with a failure.
    onTestFailed(() =>
      console.error(`featureflow serve's output:\n${serve.out().slice(-4000)}\n${serve.err().slice(-8000)}`),
    );
    // The page itself is open and holds no data; the API behind it needs the token.
    const html = await fetch(`${url}/`);
    expect([html.status, html.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    expect((await fetch(`${url}/model`)).status).toBe(401);

    const page = await browser.newPage();
    try {
      await page.goto(`${url}/#token=${token}`);
      await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 30_000 });
      // The token leaves the address bar (it stays in the tab's sessionStorage).
      expect(page.url()).toBe(`${url}/`);
      expect(await page.locator('#model').textContent()).toBe(
        'model digits v1 · service digit_classifier · entity image · image digits.pixels · label digits.label',
      );

      const rows = [
        { id: 1, digit: 3 },
        { id: 2, digit: 7 },
      ];
      const seen: { digit: number; predicted: string }[] = [];
      for (const { id, digit } of rows) {
        const bytes = digitBytes(digit);
        await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [id, digit, bytes]);
        let stored: Awaited<ReturnType<typeof storedPrediction>>;
        await waitFor(
          'the prediction to be stored',
          async () => (stored = await storedPrediction(predictions, id)) !== undefined,
        );
        const card = await shown(page, id, stored!.position);
        expect(card.size).toEqual([28, 28]);
        // Ink is dark: a pixel's byte b is drawn grey 255 - b.
        expect(card.red).toEqual(Array.from(bytes, (b) => 255 - b));
        expect([card.predicted, card.text, card.truth]).toEqual([stored!.label, stored!.label, String(digit)]);
        expect(stored!.label).toBe(String(stored!.argmax));
        seen.push({ digit, predicted: stored!.label });
      }

      // An update is a new prediction of the same entity, drawn from the new pixels. The insert's
      // position is read before the update: its prediction can be stored before the UPDATE returns.
      const inserted = (await storedPrediction(predictions, 1))!.position;
      const bytes = digitBytes(5);
      await client.query(`UPDATE ${table} SET label = 5, pixels = $1 WHERE id = 1`, [bytes]);
      // The sink keeps each entity's newest prediction: the update's replaces the insert's.
      let updated = (await storedPrediction(predictions, 1))!;
      await waitFor(
        'the update to be predicted',
        async () => (updated = (await storedPrediction(predictions, 1))!).position !== inserted,
      );
      const card = await shown(page, 1, updated.position);
      expect(card.red).toEqual(Array.from(bytes, (b) => 255 - b));
      expect([card.predicted, card.truth]).toEqual([updated.label, '5']);
      seen.push({ digit: 5, predicted: updated.label });

      const correct = seen.filter((s) => String(s.digit) === s.predicted).length;
      await page.locator('#accuracy', { hasText: `(${correct}/3)` }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#count').textContent()).toBe('3');
      expect(await page.locator('article.card').count()).toBe(3);
    } finally {
      await page.close();
    }
  });

  test('opened without the token, or with another, the page says how to pass it', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${url}/`);
      await page.locator('#status', { hasText: 'not connected' }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#model').textContent()).toBe(
        'this server needs its token: open the page as /#token=<the serve token>',
      );
      // A new tab: the same URL with another fragment would not load the page again.
      const wrong = await browser.newPage();
      await wrong.goto(`${url}/#token=wrong`);
      await wrong.locator('#model', { hasText: 'the token given is not this server’s' }).waitFor({ timeout: 30_000 });
      await wrong.close();
    } finally {
      await page.close();
    }
  });
});
