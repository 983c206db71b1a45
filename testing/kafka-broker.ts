import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { freePort } from './pg-cluster.js';
import {
  FAST_START,
  type Jvm,
  jarClasspath,
  log4jProperties,
  propertiesFile,
  runJava,
  spawnJvm,
  tail,
} from './kafka/jvm.js';

/** Options of a throwaway single-node Kafka broker. */
export interface KafkaBrokerOptions {
  /** `-Xmx` of the broker's JVM. Default `512m`. */
  maxHeap?: string;
  /**
   * JIT and GC flags of the broker's JVM. Default `['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC']`:
   * on 2 shared cores the JVM's own start takes ~2.5 s with C1 only against ~3–7 s with C2, and RSS
   * is ~175 MB against ~215–255 MB with G1; a benchmark that pushes sustained load through the broker
   * should compare with `[]` (the JVM's defaults).
   */
  jvmFlags?: string[];
  /** Extra or overriding `server.properties` entries. */
  properties?: Record<string, string | number | boolean>;
  /** How long one start attempt may take until `describeCluster` answers. Default 60 s. */
  startTimeoutMs?: number;
  /** Start attempts (a port taken between choosing and binding it, a slow JVM). Default 3. */
  attempts?: number;
  /** Level of the broker's log4j log (`logFile`). Default `INFO`. */
  logLevel?: string;
}

/** A running single-node KRaft broker (broker and controller in one JVM) on 127.0.0.1. */
export interface KafkaBroker {
  /** `127.0.0.1:<port>` of the PLAINTEXT listener, for kafkajs' `brokers`. */
  readonly brokers: string[];
  /** The broker's `log.dirs`. */
  readonly dataDir: string;
  /** The broker's log4j log file. */
  readonly logFile: string;
  /** The JVM's process id (for RSS measurements). */
  readonly pid: number;
  /** Kills the JVM (SIGTERM, SIGKILL after 10 s) and removes its temp dir; idempotent. */
  stop(): Promise<void>;
}

/**
 * A KRaft cluster id as `kafka-storage.sh random-uuid` prints it: 16 random bytes in unpadded
 * base64url. Kafka's `Uuid.randomUuid()` redraws ids starting with '-' (they read as a command-line
 * option), and so do we.
 */
export function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * Starts a throwaway Apache Kafka 4.x broker from Maven Central's jars (testing/kafka/pom.xml):
 * formats a single-node dynamic quorum (`StorageTool format --standalone`) in a temp dir, starts
 * `kafka.Kafka` on free ports bound to 127.0.0.1 and waits until kafkajs' `describeCluster` answers.
 * Start it once per test run (test/global-setup.ts does) and use random topic and group names per test.
 */
export async function startKafka(options: KafkaBrokerOptions = {}): Promise<KafkaBroker> {
  const classpath = await jarClasspath('broker');
  const attempts = options.attempts ?? 3;
  const errors: string[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const base = mkdtempSync(join(tmpdir(), 'featureflow-kafka-'));
    let jvm: Jvm | undefined;
    try {
      return await startOnce(classpath, base, options, (j) => (jvm = j));
    } catch (error) {
      errors.push(`attempt ${attempt}: ${(error as Error).message}`);
      await jvm?.stop(2_000);
      rmSync(base, { recursive: true, force: true });
    }
  }
  throw new Error(`the test Kafka broker did not start in ${attempts} attempts:\n${errors.join('\n')}`);
}

async function startOnce(
  classpath: string,
  base: string,
  options: KafkaBrokerOptions,
  onSpawn: (jvm: Jvm) => void,
): Promise<KafkaBroker> {
  const dataDir = join(base, 'data');
  const logFile = join(base, 'server.log');
  const port = await freePort();
  const controllerPort = await freePort();
  const serverProperties = join(base, 'server.properties');
  const log4j = join(base, 'log4j2.properties');
  writeFileSync(log4j, log4jProperties(logFile, options.logLevel));
  writeFileSync(
    serverProperties,
    propertiesFile({
      'process.roles': 'broker,controller',
      'node.id': 1,
      // --standalone formats a dynamic quorum: controller.quorum.voters must not be set.
      'controller.quorum.bootstrap.servers': `127.0.0.1:${controllerPort}`,
      listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      'controller.listener.names': 'CONTROLLER',
      'inter.broker.listener.name': 'PLAINTEXT',
      'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      'log.dirs': dataDir,
      'num.partitions': 1,
      // A single broker: every internal topic with one replica (and few partitions, for a fast start).
      'offsets.topic.replication.factor': 1,
      'offsets.topic.num.partitions': 1,
      'transaction.state.log.replication.factor': 1,
      'transaction.state.log.min.isr': 1,
      'transaction.state.log.num.partitions': 1,
      'share.coordinator.state.topic.replication.factor': 1,
      'share.coordinator.state.topic.min.isr': 1,
      // A consumer group's first join completes at once (default 3 s).
      'group.initial.rebalance.delay.ms': 0,
      // The cleaner's dedupe buffer is 128 MiB by default: allocated at start whatever the heap.
      'log.cleaner.dedupe.buffer.size': 2_097_152,
      ...options.properties,
    }),
  );
  const jvmArgs = [
    ...(options.jvmFlags ?? FAST_START),
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
  ];
  const format = ['format', '--standalone', '-t', randomClusterId(), '-c', serverProperties];
  await runJava(classpath, 'kafka.tools.StorageTool', format, jvmArgs);

  const outFile = join(base, 'stdout.log');
  const jvm = spawnJvm(
    classpath,
    'kafka.Kafka',
    [serverProperties],
    ['-Xms128m', `-Xmx${options.maxHeap ?? '512m'}`, ...jvmArgs],
    outFile,
    base,
  );
  onSpawn(jvm);
  const brokers = [`127.0.0.1:${port}`];
  await waitUntilServing(
    brokers,
    jvm,
    options.startTimeoutMs ?? 60_000,
    () => `${tail(outFile, 10)}\n${tail(logFile)}`,
  );

  let stopped: Promise<void> | undefined;
  return {
    brokers,
    dataDir,
    logFile,
    pid: jvm.pid,
    stop() {
      stopped ??= jvm.stop(10_000).then(() => rmSync(base, { recursive: true, force: true }));
      return stopped;
    },
  };
}

/** Polls `describeCluster` (not the TCP port: the port opens before the broker has registered). */
async function waitUntilServing(brokers: string[], jvm: Jvm, timeoutMs: number, logs: () => string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'featureflow-test-readiness',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_000,
    requestTimeout: 2_000,
    retry: { retries: 0 },
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (jvm.hasExited()) throw new Error(`the broker's JVM exited with ${await jvm.exited}:\n${logs()}`);
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0) return;
    } catch {
      // Not listening or not registered yet.
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the broker did not answer describeCluster within ${timeoutMs} ms:\n${logs()}`);
}
