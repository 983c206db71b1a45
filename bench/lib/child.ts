/** Starts {@link ./ingest-child.ts} and talks to it. */
import { fileURLToPath } from 'node:url';
import { cliChildOptions, startBenchChild, type BenchChild } from './bench-child.js';
import type { ChildResult, ChildSpec } from './ingest-child.js';

export type { ChildResult, ChildSpec } from './ingest-child.js';

const CHILD = fileURLToPath(new URL('./ingest-child.ts', import.meta.url));

/** A running ingest child; `ready` resolves when a live or raw child follows its source. */
export type IngestChild = BenchChild<unknown, ChildResult>;

/** Spawns the ingest child as the CLI runs featureflow (see cliChildOptions). */
export function startIngestChild(spec: ChildSpec): IngestChild {
  return startBenchChild(CHILD, spec, cliChildOptions());
}
