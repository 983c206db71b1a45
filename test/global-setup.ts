import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';

let cluster: PgCluster | undefined;

/** Starts one throwaway PostgreSQL cluster (wal_level=logical) for the whole test run. */
export async function setup(project: TestProject) {
  // Tests that run the CLI or install the package use the compiled package: build it from these sources.
  const built = promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']);
  cluster = await startPgCluster();
  await built.catch((error: { stdout?: string }) => {
    throw new Error(`npm run build failed:\n${error.stdout ?? String(error)}`);
  });
  project.provide('pgUrl', cluster.url);
  project.provide('pgDataDir', cluster.dataDir);
}

export async function teardown() {
  await cluster?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    pgDataDir: string;
  }
}
