import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { pgUrl } from './helpers.js';

// `npm run demo` is what a new user runs first: it runs here too (on the test run's PostgreSQL), so
// it cannot rot.

const run = promisify(execFile);

describe('npm run demo', () => {
  test('runs to the end and finds the change log, the feature view and the training set equal to PostgreSQL', async () => {
    const { stdout } = await run(
      process.execPath,
      [resolve('node_modules/tsx/dist/cli.mjs'), 'features/demo/demo.ts'],
      {
        env: { ...process.env, DATABASE_URL: pgUrl() },
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    expect(stdout).toMatch(/rows rebuilt from the change log: \d+; rows in PostgreSQL: \d+ → equal/);
    expect(stdout).toMatch(/feature view order_features v1 .* → equal/);
    expect(stdout).toMatch(
      /point in time: the status joined for each \(order, time\) equals PostgreSQL's status at that time for (\d+) of \1 rows/,
    );
  });
});
