/**
 * The benchmarks' processes under test run as JavaScript compiled by tsc, as users run featureflow
 * (the package's `dist/`, the `featureflow` CLI), not through tsx. Through tsx, a process holds
 * ~55 MB more after loading featureflow (176 MB against 121 MB: tsx's loader thread and the
 * transpiled sources), and a serve process with a scorer ~150 MB more (428 MB against 275 MB,
 * bench/serve-latency.ts), which the peak RSS figures would count as featureflow's. Its tail
 * latencies differ too: commit → prediction p99 on the SSE stream at 1000/s was 7.6–10 ms through
 * tsx and 9.6–27 ms compiled (five runs each, interleaved), for a reason not found. The whole tree
 * (`tsconfig.bench.json`: the package, the examples, the benchmarks) is compiled once per benchmark
 * run into `node_modules/.cache/featureflow-bench/` (~10 s), where packages resolve from the
 * project's `node_modules`.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OUT = join(ROOT, 'node_modules', '.cache', 'featureflow-bench');
let built = false;

/** Compiles the tree into {@link OUT} (once per process; later calls return at once). */
export function buildCompiled(): void {
  if (built) return;
  const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.bench.json')], { cwd: ROOT, stdio: 'inherit' });
  // Below node_modules no package.json of the project is in scope: say the files are ES modules.
  writeFileSync(join(OUT, 'package.json'), '{ "type": "module" }\n');
  // Files the compiler does not copy (as `npm run build` copies them into dist/).
  cpSync(join(ROOT, 'framework', 'serving', 'page'), join(OUT, 'framework', 'serving', 'page'), { recursive: true });
  built = true;
}

/** The compiled JavaScript of `script`, a TypeScript file of this project (built first if need be). */
export function compiledScript(script: string): string {
  buildCompiled();
  return join(OUT, relative(ROOT, script)).replace(/\.ts$/, '.js');
}
