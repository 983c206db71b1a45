import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './pg-cluster.js';
import { FAST_START, type Jvm, jarClasspath, log4jProperties, propertiesFile, spawnJvm, tail } from './kafka/jvm.js';

/** Options of a Kafka Connect standalone worker running Debezium's PostgreSQL connector. */
export interface DebeziumConnectOptions {
  /** The Kafka broker(s) the worker writes to, `host:port`. */
  brokers: readonly string[];
  /** `postgres://user:password@host:port/db` of the captured database; the role needs REPLICATION (or superuser). */
  pgUrl: string;
  /** `topic.prefix`: change topics are `<prefix>.<schema>.<table>`, transaction metadata `<prefix>.transaction`. */
  topicPrefix: string;
  /** `table.include.list`, as `schema.table` names (Debezium reads each entry as a regular expression). */
  tables: readonly string[];
  /** `slot.name` of the logical replication slot Debezium creates (or reuses). */
  slot: string;
  /** `publication.name`; created for the included tables (`publication.autocreate.mode=filtered`). */
  publication: string;
  /** The connector's name in the worker. Default `debezium-<topicPrefix>`. */
  name?: string;
  /** `schemas.enable` of the key and value JsonConverters (`{schema, payload}` envelopes). Default true. */
  schemasEnable?: boolean;
  /** `poll.interval.ms`: how long Debezium waits to fill a batch at low load. Default Debezium's (500 ms). */
  pollIntervalMs?: number;
  /** Drops the replication slot when the connector stops gracefully (`slot.drop.on.stop`). Default true. */
  dropSlotOnStop?: boolean;
  /** Extra or overriding connector properties. */
  connector?: Record<string, string | number | boolean>;
  /** Extra or overriding worker properties. */
  worker?: Record<string, string | number | boolean>;
  /** `-Xmx` of the worker's JVM. Default `512m`. */
  maxHeap?: string;
  /** JIT and GC flags of the worker's JVM. Default C1 only and the serial collector (a fast start). */
  jvmFlags?: string[];
  /** How long one start may take until the connector and its task are RUNNING. Default 120 s. */
  startTimeoutMs?: number;
  /** Start attempts when the JVM dies or its REST API never answers (a REST port taken meanwhile). Default 3. */
  attempts?: number;
}

/** A connector's state as `GET /connectors/<name>/status` reports it. */
export interface ConnectorStatus {
  name: string;
  connector: { state: string; worker_id: string; trace?: string };
  tasks: { id: number; state: string; worker_id: string; trace?: string }[];
}

/** A running Kafka Connect standalone worker with one Debezium PostgreSQL connector. */
export interface DebeziumConnect {
  /** The connector's name. */
  readonly name: string;
  /** `http://127.0.0.1:<port>` of the worker's REST API. */
  readonly restUrl: string;
  /** The worker's temp dir (properties, the file offset store, logs). */
  readonly dataDir: string;
  /** The worker's log4j log file. */
  readonly logFile: string;
  /** The JVM's process id. */
  readonly pid: number;
  /** The connector's current status from the REST API. */
  status(): Promise<ConnectorStatus>;
  /**
   * Stops the worker (SIGTERM: the connector stops and, by default, drops its slot; SIGKILL after
   * 15 s) and removes its temp dir; idempotent.
   */
  stop(): Promise<void>;
}

/**
 * Starts Kafka Connect standalone (`ConnectStandalone worker.properties connector.properties`) from
 * Maven Central's jars (testing/kafka/pom.xml, profile `connect`) with Debezium's PostgreSQL connector,
 * configured to mirror featureflow's own source: pgoutput, a filtered publication, an initial
 * snapshot, truncates not skipped, transaction metadata on, and JsonConverter keeping SQL NULLs
 * (`replace.null.with.default=false`). Resolves once the connector and its task are RUNNING (the
 * snapshot may still be under way). The offsets file lives in the temp dir and goes with `stop()`.
 */
export async function startDebeziumConnect(options: DebeziumConnectOptions): Promise<DebeziumConnect> {
  const classpath = await jarClasspath('connect');
  const attempts = options.attempts ?? 3;
  const errors: string[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const base = mkdtempSync(join(tmpdir(), 'featureflow-connect-'));
    let jvm: Jvm | undefined;
    try {
      return await startOnce(classpath, base, options, (j) => (jvm = j));
    } catch (error) {
      const e = error as Error & { final?: boolean };
      errors.push(`attempt ${attempt}: ${e.message}`);
      await jvm?.stop(5_000);
      rmSync(base, { recursive: true, force: true });
      // A connector or task that FAILED fails again: its trace says why (a config, the database).
      if (e.final) break;
    }
  }
  throw new Error(`Kafka Connect with Debezium did not start:\n${errors.join('\n')}`);
}

/** Debezium's `database.*` properties from a PostgreSQL URL. */
export function debeziumDatabaseProperties(pgUrl: string): Record<string, string> {
  const url = new URL(pgUrl);
  return {
    'database.hostname': url.hostname,
    'database.port': url.port || '5432',
    'database.user': decodeURIComponent(url.username) || 'postgres',
    'database.password': decodeURIComponent(url.password),
    'database.dbname': decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || 'postgres',
    'database.sslmode': url.searchParams.get('sslmode') ?? 'disable',
  };
}

async function startOnce(
  classpath: string,
  base: string,
  options: DebeziumConnectOptions,
  onSpawn: (jvm: Jvm) => void,
): Promise<DebeziumConnect> {
  const name = options.name ?? `debezium-${options.topicPrefix}`;
  const restPort = await freePort();
  const restUrl = `http://127.0.0.1:${restPort}`;
  const logFile = join(base, 'connect.log');
  const log4j = join(base, 'log4j2.properties');
  const workerProperties = join(base, 'worker.properties');
  const connectorProperties = join(base, 'connector.properties');
  const schemas = options.schemasEnable ?? true;
  writeFileSync(log4j, log4jProperties(logFile));
  writeFileSync(
    workerProperties,
    propertiesFile({
      'bootstrap.servers': options.brokers.join(','),
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': schemas,
      'value.converter.schemas.enable': schemas,
      // The default (true) writes a column's default value where the row holds SQL NULL.
      'value.converter.replace.null.with.default': false,
      'offset.storage.file.filename': join(base, 'offsets.dat'),
      'offset.flush.interval.ms': 1_000,
      listeners: restUrl,
      'rest.advertised.host.name': '127.0.0.1',
      'rest.advertised.port': restPort,
      // The connector and converters are on the worker's classpath and declare themselves in
      // META-INF/services: no plugin.path, and no reflective scan of every jar at start-up.
      'plugin.discovery': 'service_load',
      // Low-latency producer for tests (Kafka 4's default linger.ms is 5).
      'producer.linger.ms': 0,
      ...options.worker,
    }),
  );
  writeFileSync(
    connectorProperties,
    propertiesFile({
      name,
      'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
      'tasks.max': 1,
      ...debeziumDatabaseProperties(options.pgUrl),
      // The community default is decoderbufs, a server plugin the test cluster does not have.
      'plugin.name': 'pgoutput',
      'slot.name': options.slot,
      'slot.drop.on.stop': options.dropSlotOnStop ?? true,
      'publication.name': options.publication,
      'publication.autocreate.mode': 'filtered',
      'topic.prefix': options.topicPrefix,
      'table.include.list': options.tables.join(','),
      'snapshot.mode': 'initial',
      // Truncates are skipped by default.
      'skipped.operations': 'none',
      'provide.transaction.metadata': true,
      ...(options.pollIntervalMs === undefined ? {} : { 'poll.interval.ms': options.pollIntervalMs }),
      ...options.connector,
    }),
  );

  const outFile = join(base, 'stdout.log');
  const jvm = spawnJvm(
    classpath,
    'org.apache.kafka.connect.cli.ConnectStandalone',
    [workerProperties, connectorProperties],
    [
      '-Xms128m',
      `-Xmx${options.maxHeap ?? '512m'}`,
      ...(options.jvmFlags ?? FAST_START),
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${log4j}`,
    ],
    outFile,
    base,
  );
  onSpawn(jvm);
  const logs = () => `${tail(outFile, 10)}\n${tail(logFile)}`;
  const status = async (): Promise<ConnectorStatus> => {
    const url = `${restUrl}/connectors/${encodeURIComponent(name)}/status`;
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok)
      throw new Error(`GET /connectors/${name}/status answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as ConnectorStatus;
  };

  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let last = 'the REST API never answered';
  for (;;) {
    if (jvm.hasExited()) throw new Error(`the Connect worker's JVM exited with ${await jvm.exited}:\n${logs()}`);
    const current = await status().catch((error: Error) => error);
    if (!(current instanceof Error)) {
      const failed = [current.connector, ...current.tasks].find((s) => s.state === 'FAILED');
      if (failed)
        throw Object.assign(new Error(`connector ${name} FAILED:\n${failed.trace ?? ''}\n${logs()}`), { final: true });
      const running = (s: { state: string }) => s.state === 'RUNNING';
      if (running(current.connector) && current.tasks.length > 0 && current.tasks.every(running)) break;
      last = JSON.stringify(current);
    } else if (!/fetch failed|timeout|aborted/i.test(current.message)) {
      last = current.message;
    }
    if (Date.now() > deadline)
      throw new Error(`connector ${name} was not RUNNING within ${timeoutMs} ms (${last}):\n${logs()}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  let stopped: Promise<void> | undefined;
  return {
    name,
    restUrl,
    dataDir: base,
    logFile,
    pid: jvm.pid,
    status,
    stop() {
      stopped ??= jvm.stop(15_000).then(() => rmSync(base, { recursive: true, force: true }));
      return stopped;
    },
  };
}
