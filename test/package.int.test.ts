import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pgClient, pgUrl, randomName } from './helpers.js';

// The package as users get it: packed (`npm pack`, which builds it), installed into a fresh project,
// used from a plain .mjs file, from a .ts file compiled with `tsc --init`'s default settings, and
// through `npx featureflow` with a TypeScript config.

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let project: string;
const table = randomName('pkg');

async function sh(file: string, args: string[], env: Record<string, string> = {}) {
  return run(file, args, {
    cwd: project,
    env: { ...process.env, ...env },
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** The quick start: ingest a table until caught up, then read a feature view's latest values. */
function quickStart(slot: string, store: string): string {
  return [
    `import { closeContainer, createContainer, defineConfig, duckdb, entity, featureView, float64, postgres, TOKENS } from 'featureflow';`,
    `const item = entity({ name: 'item', keys: ['id'] });`,
    `const prices = featureView({ name: 'prices', version: 1, entity: item, source: '${table}', features: { price: float64 } });`,
    `const config = defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }), store: duckdb({ path: '${store}' }),`,
    `  features: { views: [prices] }, logLevel: 'warn' });`,
    `const container = await createContainer(config);`,
    `const result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });`,
    `const latest = await (await container.getAsync(TOKENS.OfflineStore)).latest('prices');`,
    `console.log(JSON.stringify({ applied: result.changesApplied, rows: latest.numRows }));`,
    `await closeContainer(container);`,
  ].join('\n');
}

beforeAll(async () => {
  const client = await pgClient();
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, price float8)`);
  await client.query(`INSERT INTO ${table} SELECT g, g / 2.0 FROM generate_series(1, 25) g`);
  await client.end();
  project = mkdtempSync(join(tmpdir(), 'featureflow-user-'));
  const packed = mkdtempSync(join(tmpdir(), 'featureflow-pack-'));
  await run(npm, ['pack', '--pack-destination', packed, '--silent'], { cwd: resolve('.'), timeout: 240_000 });
  const tarball = join(packed, readdirSync(packed).find((f) => f.endsWith('.tgz'))!);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  // From npm's cache where it can: the same packages the repository installed.
  await sh(npm, [
    'install',
    tarball,
    'typescript@5.9',
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    '--loglevel=error',
  ]);
}, 300_000);

afterAll(async () => {
  const client = await pgClient();
  for (const row of (await client.query(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pkg_%'`))
    .rows) {
    await client.query('SELECT pg_drop_replication_slot($1)', [row.slot_name]);
  }
  await client.end();
});

describe('the package, installed in a fresh project', () => {
  test('ships compiled JavaScript with types, not TypeScript sources', () => {
    const dist = readdirSync(join(project, 'node_modules', 'featureflow', 'dist'));
    expect(dist).toEqual(expect.arrayContaining(['index.js', 'index.d.ts']));
    expect(readdirSync(join(project, 'node_modules', 'featureflow')).filter((f) => f.endsWith('.ts'))).toEqual([]);
    // The live page is not TypeScript: the build copies its files into dist, where serve reads them.
    const page = join(project, 'node_modules', 'featureflow', 'dist', 'framework', 'serving', 'page');
    expect(readdirSync(page).sort()).toEqual(['index.html', 'page.css', 'page.js']);
  });

  test('the quick start runs from a plain .mjs file', async () => {
    writeFileSync(join(project, 'quickstart.mjs'), quickStart(randomName('pkg'), 'mjs.duckdb'));
    const { stdout } = await sh(process.execPath, ['quickstart.mjs'], { DATABASE_URL: pgUrl() });
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ applied: 25, rows: 25 });
  });

  test('the quick start compiles from a .ts file with default compiler settings, and runs', async () => {
    writeFileSync(join(project, 'quickstart.ts'), quickStart(randomName('pkg'), 'ts.duckdb'));
    await sh(process.execPath, ['node_modules/typescript/bin/tsc', '--init']);
    await sh(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']);
    const { stdout } = await sh(process.execPath, ['quickstart.js'], { DATABASE_URL: pgUrl() });
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ applied: 25, rows: 25 });
  });

  test('npx featureflow runs the compiled CLI with a TypeScript config; the digits example imports', async () => {
    const slot = randomName('pkg');
    writeFileSync(
      join(project, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, postgres } from 'featureflow';`,
        `import { digitClassifier } from 'featureflow/digits';`,
        `if (digitClassifier.name !== 'digit_classifier') throw new Error('the digits example did not import');`,
        `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }), store: duckdb({ path: 'cli.duckdb' }) });`,
      ].join('\n'),
    );
    const { stdout } = await sh(npm, ['exec', '--', 'featureflow', 'ingest', '--until-caught-up'], {
      DATABASE_URL: pgUrl(),
    });
    expect(stdout).toMatch(/snapshot taken; 25 changes applied/);
  });
});
