import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { FeatureflowError } from '../framework/errors.js';
import { mountHungFileSystem, type HungMount } from '../testing/hung-mount.js';
import { pgUrl, randomName, testConfig } from './helpers.js';
import { ingestUntilCaughtUp } from './ingest-harness.js';

// Bad files and paths get a coded error naming the file and the fix, no stack trace, and nothing
// written beside the user's files; a file system that never answers is waited on for a bounded time.

const run = promisify(execFile);
const BIN = resolve('bin/featureflow.js');
const asRoot = userInfo().uid === 0;

/** Runs the CLI; as root, as the `postgres` OS user, so that file permissions apply. */
async function cli(args: string[], cwd: string, options: { asUser?: boolean; env?: Record<string, string> } = {}) {
  const [file, argv] =
    options.asUser && asRoot
      ? ['runuser', ['-u', 'postgres', '--', process.execPath, BIN, ...args]]
      : [process.execPath, [BIN, ...args]];
  try {
    const { stdout, stderr } = await run(file, argv as string[], {
      cwd,
      env: { ...process.env, ...options.env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A folder everyone may read and enter; with `writable: false`, only its owner (root, or us) may write. */
function folder(writable: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-files-'));
  chmodSync(dir, writable ? 0o777 : asRoot ? 0o755 : 0o555);
  return dir;
}

async function storeError(path: string): Promise<FeatureflowError> {
  const config = testConfig([`public.${randomName('none')}`], { store: { path, openTimeoutSeconds: 5 } });
  const error = await ingestUntilCaughtUp(config).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FeatureflowError);
  return error as FeatureflowError;
}

let hung: HungMount | undefined;
afterAll(() => hung?.release());

describe('bad config files', () => {
  test("a syntax error names the user's file, line and column; nothing is written beside it", async () => {
    const dir = folder(true);
    const file = join(dir, 'featureflow.config.ts');
    writeFileSync(
      file,
      [
        "import { defineConfig } from 'featureflow';",
        'export default defineConfig({',
        "  source: { tables: ['t'] ",
        '});',
        '',
      ].join('\n'),
    );
    const result = await cli(['status'], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[FF_CONFIG_INVALID\]/);
    expect(result.stderr).toContain(`${file}:4:`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir)).toEqual(['featureflow.config.ts']);
  });

  test('a config in a folder the user cannot write loads (nothing is written beside it)', async () => {
    const dir = folder(false);
    const store = join(folder(true), 'never.duckdb');
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `export default defineConfig({ source: postgres({ tables: ['t'], slot: '${randomName('slot')}' }), store: duckdb({ path: ${JSON.stringify(store)} }) });`,
      ].join('\n'),
    );
    if (!asRoot) chmodSync(dir, 0o555);
    const result = await cli(['status', '--json'], dir, { asUser: true, env: { DATABASE_URL: pgUrl() } });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).changeLog).toMatchObject({ location: store, state: 'no change log yet' });
    expect(readdirSync(dir)).toEqual(['featureflow.config.ts']);
  });
});

describe('bad store paths', () => {
  test('a store folder that cannot be created: FF_STORE_PATH naming the folder', async () => {
    const parent = folder(false);
    const path = join(parent, 'sub', 'store.duckdb');
    const result = await cli(['ingest', '--until-caught-up', '--tables', 'public.t'], folder(true), {
      asUser: true,
      env: { DATABASE_URL: pgUrl(), FEATUREFLOW_DUCKDB: path },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[FF_STORE_PATH\].*cannot be created: its folder .*sub cannot be made \(EACCES\)/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(parent)).toEqual([]);
  });

  test('a store path under a file: FF_STORE_PATH', async () => {
    const dir = folder(true);
    writeFileSync(join(dir, 'plain'), 'x');
    const error = await storeError(join(dir, 'plain', 'store.duckdb'));
    expect(error.code).toBe('FF_STORE_PATH');
    expect(error.message).toMatch(/is under a file, not a folder/);
  });

  test('a store path that is a folder: FF_STORE_PATH suggesting a file in it', async () => {
    const dir = folder(true);
    const error = await storeError(dir);
    expect(error.code).toBe('FF_STORE_PATH');
    expect(error.message).toMatch(
      new RegExp(`is a folder; point duckdb\\(\\{ path \\}\\) .* at a file, e.g. ${dir}/featureflow.duckdb`),
    );
  });

  test("a file that is not DuckDB's: FF_STORE_PATH, the file untouched", async () => {
    const dir = folder(true);
    const path = join(dir, 'notes.duckdb');
    writeFileSync(path, 'these are my notes, not a database\n'.repeat(10));
    const error = await storeError(path);
    expect(error.code).toBe('FF_STORE_PATH');
    expect(error.message).toMatch(/is not a DuckDB file/);
    expect(readFileSync(path, 'utf8')).toBe('these are my notes, not a database\n'.repeat(10));
    expect(readdirSync(dir)).toEqual(['notes.duckdb']);
  });

  test('a store on a file system that never answers: bounded (FF_STORE_TIMEOUT), and Ctrl-C ends the wait', async () => {
    hung = mountHungFileSystem();
    const dir = folder(true);
    const path = join(hung.dir, 'sub', 'store.duckdb');
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `export default defineConfig({ source: postgres({ tables: ['t'] }), store: duckdb({ path: ${JSON.stringify(path)}, openTimeoutSeconds: 2 }) });`,
      ].join('\n'),
    );
    const started = Date.now();
    const result = await cli(['ingest', '--until-caught-up'], dir, { env: { DATABASE_URL: pgUrl() } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[FF_STORE_TIMEOUT\].*did not finish within 2 s.*hung network or FUSE mount/);
    // Bounded: far from the hang (a loaded machine takes a while to start Node and load the config).
    expect(Date.now() - started).toBeLessThan(60_000);

    // With a long bound, Ctrl-C (twice: the first asks to stop after the current batch) ends the run at once.
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `export default defineConfig({ source: postgres({ tables: ['t'] }), store: duckdb({ path: ${JSON.stringify(path)}, openTimeoutSeconds: 600 }) });`,
      ].join('\n'),
    );
    const child = spawn(process.execPath, [BIN, 'ingest'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: pgUrl() },
      stdio: 'pipe',
    });
    const exited = new Promise<string>((r) => child.on('exit', (code, signal) => r(signal ?? String(code))));
    await new Promise((r) => setTimeout(r, 3000));
    const interrupted = Date.now();
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    // 130 once the ingest's handler is installed; killed by the signal if it came before that.
    expect(['130', 'SIGINT']).toContain(await exited);
    expect(Date.now() - interrupted).toBeLessThan(60_000); // not the 600 s bound
  });
});

// Keep the folder helper honest about permissions where the tests run as root.
test('the permission tests run as a user without write access', async () => {
  const parent = folder(false);
  if (asRoot) {
    const { stdout } = await run('runuser', [
      '-u',
      'postgres',
      '--',
      'sh',
      '-c',
      `touch ${parent}/x 2>/dev/null && echo wrote || echo refused`,
    ]);
    expect(stdout.trim()).toBe('refused');
  } else mkdirSync(join(folder(true), 'ok'));
});
