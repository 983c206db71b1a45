/**
 * Runs a benchmark's helper script in its own process (`node --import tsx <script>`, or compiled,
 * see {@link ./compiled.ts}), so that what it does (serving, reading a stream, generating load) does
 * not share an event loop with what it measures. The child side of the protocol is
 * {@link ./child-io.ts}: the first line on stdin is the JSON spec, a later line `stop` asks the child
 * to finish; lines on stdout starting with `@@` are JSON events (`ready` and `result` carry data).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { compiledScript } from './compiled.js';

/** A running helper process. */
export interface BenchChild<Ready, Result> {
  readonly process: ChildProcess;
  /** Resolves with the child's `ready` data (rejects if it exits first). */
  readonly ready: Promise<Ready>;
  /** Resolves with the child's `result` data when it exits with 0. */
  readonly result: Promise<Result>;
  /** Asks the child to finish (it then sends its result and exits). */
  stop(): void;
  /** Kills the child if it still runs (after a failure). */
  kill(): void;
}

/** Options of {@link startBenchChild}. */
export interface BenchChildOptions {
  /** Node flags before the script (and before `--import tsx`). */
  readonly nodeArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Run the script compiled to JavaScript ({@link compiledScript}) rather than through tsx. */
  readonly compiled?: boolean;
}

/** The V8 flag and the environment the `featureflow` CLI runs with (the shebang of bin/featureflow.js). */
const CLI_NODE_ARGS = ['--max-semi-space-size=8'];
const CLI_ENV = { MALLOC_ARENA_MAX: '2' };

/**
 * Options that run a child as the CLI runs featureflow, for a process under test: compiled to
 * JavaScript ({@link compiledScript}), with the CLI's node flags and environment; extra node flags
 * (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) come from the environment variable `FF_BENCH_NODE_ARGS`;
 * with `FF_BENCH_ECHO=1`, what a child prints besides its events goes to stderr (e.g. `--trace-gc`).
 */
export function cliChildOptions(): BenchChildOptions {
  const extra = (process.env.FF_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  return { nodeArgs: [...CLI_NODE_ARGS, ...extra], env: { ...CLI_ENV, ...process.env }, compiled: true };
}

export function startBenchChild<Ready, Result>(
  script: string,
  spec: unknown,
  options: BenchChildOptions = {},
): BenchChild<Ready, Result> {
  const command = options.compiled ? [compiledScript(script)] : ['--import', 'tsx', script];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...command], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...options.env },
  });
  // On stdin, not in argv: one argument may not exceed 128 KiB (E2BIG).
  child.stdin!.write(JSON.stringify(spec) + '\n');
  let onReady: (data: Ready) => void = () => undefined;
  const ready = new Promise<Ready>((resolve) => (onReady = resolve));
  let data: Result | undefined;
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('@@')) {
        // The child's other output (e.g. V8's --trace-gc lines), when asked for.
        if (process.env.FF_BENCH_ECHO) process.stderr.write(`${line}\n`);
        continue;
      }
      const message = JSON.parse(line.slice(2)) as { event: string; data: unknown };
      if (message.event === 'ready') onReady(message.data as Ready);
      else if (message.event === 'result') data = message.data as Result;
    }
  });
  const result = new Promise<Result>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0 && data !== undefined) resolve(data);
      else reject(new Error(`${script} exited with ${signal ?? `code ${code}`} without a result`));
    });
  });
  result.catch(() => undefined);
  // A child that dies before `ready` must not leave the caller waiting for it.
  const readyOrDead = Promise.race([
    ready,
    result.then(() => {
      throw new Error(`${script} finished before it was ready`);
    }),
  ]);
  readyOrDead.catch(() => undefined);
  return {
    process: child,
    ready: readyOrDead,
    result,
    stop: () => {
      if (child.stdin!.writable) child.stdin!.end('stop\n');
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
