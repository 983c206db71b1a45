import { execFile } from 'node:child_process';
import { cpSync } from 'node:fs';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { startKafka, type KafkaBroker } from '../testing/kafka-broker.js';

let cluster: PgCluster | undefined;
let kafka: KafkaBroker | undefined;

/** Starts one throwaway PostgreSQL cluster (wal_level=logical) and one Kafka broker for the whole test run. */
export async function setup(project: TestProject) {
  // One Kafka broker for the whole run too; its JVM starts while PostgreSQL does.
  const kafkaStarted = startKafka();
  kafkaStarted.then(
    (broker) => (kafka = broker),
    () => undefined,
  );
  // Tests that run the CLI or install the package use the compiled package: build it from these sources.
  const built = promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json']);
  cluster = await startPgCluster();
  await built.catch((error: { stdout?: string }) => {
    throw new Error(`npm run build failed:\n${error.stdout ?? String(error)}`);
  });
  // As `npm run build` does: the live page's files are not TypeScript, so tsc does not emit them.
  cpSync('framework/serving/page', 'dist/framework/serving/page', { recursive: true });
  project.provide('pgUrl', cluster.url);
  project.provide('pgDataDir', cluster.dataDir);
  project.provide('kafkaBrokers', (await kafkaStarted).brokers);
}

export async function teardown() {
  await kafka?.stop();
  await cluster?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
    pgDataDir: string;
    /** `127.0.0.1:<port>` of the run's Kafka broker. */
    kafkaBrokers: string[];
  }
}
