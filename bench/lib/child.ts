/** Starts {@link ./ingest-child.ts} and talks to it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildResult, ChildSpec } from './ingest-child.js';

export type { ChildResult, ChildSpec } from './ingest-child.js';

const CHILD = fileURLToPath(new URL('./ingest-child.ts', import.meta.url));

/** A running ingest child. */
export interface IngestChild {
  readonly process: ChildProcess;
  /** Resolves when the child says `ready` (live and raw modes). */
  readonly ready: Promise<void>;
  /** Resolves with the child's result when it exits. */
  readonly result: Promise<ChildResult>;
  /** Asks a live or raw child to stop. */
  stop(): void;
  /** Kills the child if it still runs (after a failure). */
  kill(): void;
}

/** The V8 flag and the environment the `featureflow` CLI runs with (the shebang of bin/featureflow.js). */
const CLI_NODE_ARGS = ['--max-semi-space-size=32'];
const CLI_ENV = { MALLOC_ARENA_MAX: '2' };

/**
 * Spawns `node --import tsx bench/lib/ingest-child.ts <spec>` with the CLI's node flags and environment. Extra node
 * flags (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) come from the environment variable `FF_BENCH_NODE_ARGS`.
 */
export function startIngestChild(spec: ChildSpec): IngestChild {
  const nodeArgs = [...CLI_NODE_ARGS, ...(process.env.FF_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', CHILD, JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...CLI_ENV, ...process.env },
  });
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  let data: ChildResult | undefined;
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('@@')) continue;
      const message = JSON.parse(line.slice(2)) as { event: string; data: unknown };
      if (message.event === 'ready') onReady();
      else if (message.event === 'result') data = message.data as ChildResult;
    }
  });
  const result = new Promise<ChildResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0 && data) resolve(data);
      else reject(new Error(`ingest child (${spec.mode}) exited with code ${code} without a result`));
    });
  });
  // A child that dies before `ready` must not leave the caller waiting for it.
  const readyOrDead = Promise.race([ready, result.then(() => undefined)]);
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
