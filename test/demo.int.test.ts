import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { loadMnistDigits, PACKAGE_SPLIT } from '../features/digits/index.js';
import { pgUrl } from './helpers.js';

// `npm run demo` is what a new user runs first: it runs here too (on the test run's PostgreSQL), so
// it cannot rot. Its predictions are checked against the labels the demo held back, digit by digit.

const run = promisify(execFile);

describe('npm run demo', () => {
  test('snapshots labelled digits, serves the shipped CNN, and predicts every held-out digit inserted, nearly all right', async () => {
    const digits = 200;
    const { stdout } = await run(
      process.execPath,
      [resolve('node_modules/tsx/dist/cli.mjs'), 'features/demo/demo.ts', '--digits', String(digits), '--rate', '50'],
      {
        env: { ...process.env, DATABASE_URL: pgUrl() },
        timeout: 280_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    expect(stdout).toMatch(/feature view digits v1: 8000 images as 28×28 tensors/);
    expect(stdout).toMatch(
      /8000 rows → .*demo-digits-train\.arrow; manifest: view digits v1, fingerprint [0-9a-f]{12}/,
    );
    // The shipped model traces to today's definition of the digits view (retrain it when that changes).
    expect(stdout).toMatch(/its manifest traces it to view digits v1 .*\n {3}the same definition as this demo's view/);

    // One line per prediction; the oracle is the mnist package's label of that id.
    const labels = new Map(loadMnistDigits().map((d) => [d.id, d.label]));
    const predicted = [...stdout.matchAll(/#(\d+) {2}predicted (\d)/g)].map((m) => ({
      id: Number(m[1]),
      digit: Number(m[2]),
    }));
    const ids = predicted.map((p) => p.id).sort((a, b) => a - b);
    const first = PACKAGE_SPLIT.heldOut.from;
    expect(ids).toEqual(Array.from({ length: digits }, (_, i) => first + i));
    const right = predicted.filter((p) => p.digit === labels.get(p.id)).length;
    expect(right / digits).toBeGreaterThanOrEqual(0.94);
    expect(stdout).toContain(`live accuracy against the held-back labels: ${right} of ${digits} right`);
    expect(stdout).not.toMatch(/MISSING predictions/);
    expect(stdout).toMatch(/commit → prediction, in all +p50 +\d+\.\d/);
  }, 300_000);
});
