/**
 * Runs the benchmarks: every `bench/*.ts` module except this one (files in `bench/lib/` are helpers),
 * in file-name order, each exporting `run(): Promise<BenchResult[]>`. Prints one table and writes
 * `bench/results.json`. Arguments filter the modules: `npm run bench -- snapshot` runs only those
 * whose file name contains `snapshot`.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus } from 'node:os';
import { buildCompiled } from './lib/compiled.js';
import type { BenchResult } from './lib/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
const resultsFile = join(here, 'results.json');

interface ModuleOutcome {
  module: string;
  seconds: number;
  results: BenchResult[];
  error?: string;
}

function modules(filters: readonly string[]): string[] {
  return readdirSync(here, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && e.name !== self)
    .map((e) => e.name)
    .sort()
    .filter((name) => filters.length === 0 || filters.some((word) => name.includes(word)));
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function table(outcomes: readonly ModuleOutcome[]): string {
  const header = ['benchmark', 'figure', 'unit', 'reference', 'reference figure', 'ratio', 'target', 'result'];
  const rows: string[][] = [];
  for (const o of outcomes) {
    for (const r of o.results) {
      rows.push([
        r.name,
        formatNumber(r.value),
        r.unit,
        r.reference.name,
        `${formatNumber(r.reference.value)} ${r.reference.unit}`,
        `${r.ratio.toFixed(2)}×`,
        r.target,
        r.pass ? 'pass' : 'FAIL',
      ]);
    }
    if (o.error) rows.push([`${o.module}: ERROR`, '', '', o.error.split('\n')[0]!.slice(0, 100), '', '', '', 'FAIL']);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const right = new Set([1, 4, 5]);
  const line = (cells: string[]) =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2).filter((a) => a !== '--');
  const files = modules(filters);
  if (files.length === 0) {
    console.error(`no benchmark in bench/ matches ${filters.join(', ')}`);
    return 2;
  }
  // Before any measurement: the processes under test run compiled (lib/compiled.ts).
  buildCompiled();
  const outcomes: ModuleOutcome[] = [];
  for (const file of files) {
    const started = performance.now();
    console.error(`[bench] ${file} …`);
    const outcome: ModuleOutcome = { module: file, seconds: 0, results: [] };
    try {
      const mod = (await import(pathToFileURL(join(here, file)).href)) as { run?: () => Promise<BenchResult[]> };
      if (typeof mod.run !== 'function') throw new Error(`bench/${file} does not export run(): Promise<BenchResult[]>`);
      outcome.results = await mod.run();
    } catch (error) {
      outcome.error = (error as Error)?.stack ?? String(error);
      console.error(`[bench] ${file} failed: ${outcome.error}`);
    }
    outcome.seconds = (performance.now() - started) / 1000;
    console.error(`[bench] ${file} done in ${outcome.seconds.toFixed(1)} s`);
    outcomes.push(outcome);
  }
  console.log(table(outcomes));

  // Keep earlier results of modules not run this time (a filtered run updates only its own).
  let previous: Record<string, unknown> = {};
  if (existsSync(resultsFile)) {
    try {
      previous = (JSON.parse(readFileSync(resultsFile, 'utf8')) as { modules?: Record<string, unknown> }).modules ?? {};
    } catch {
      previous = {};
    }
  }
  const now = new Date().toISOString();
  const merged = { ...previous };
  for (const o of outcomes)
    merged[o.module] = { ranAt: now, seconds: o.seconds, results: o.results, ...(o.error ? { error: o.error } : {}) };
  const machine = { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model };
  writeFileSync(resultsFile, JSON.stringify({ updatedAt: now, machine, modules: merged }, null, 2) + '\n');
  console.error(`[bench] wrote ${resultsFile}`);
  // A benchmark that missed its target is reported in the table; only a crashed one fails the command.
  return outcomes.some((o) => o.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
