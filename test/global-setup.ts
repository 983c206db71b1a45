import type { TestProject } from 'vitest/node';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster';

let cluster: PgCluster | undefined;

/** Starts one throwaway PostgreSQL cluster (wal_level=logical) for the whole test run. */
export async function setup(project: TestProject) {
  cluster = await startPgCluster();
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
