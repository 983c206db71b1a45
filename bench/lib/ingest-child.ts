/**
 * A featureflow ingest (or a bare replication subscriber) in its own process, so that a benchmark
 * can read its memory and its timings apart from the benchmark's own work. Started by
 * {@link ./child.ts}; the protocol is bench-child's (the spec, then `stop` ending a `live` or `raw`
 * run, on stdin; `ready` and `result` events on stdout).
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { emit, runChild } from './child-io.js';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { defineDigitsView } from '../../features/digits/digits-view.js';
import {
  closeContainer,
  createContainer,
  DuckDBOfflineStore,
  debezium,
  duckdb,
  openOfflineStore,
  postgres,
  TOKENS,
} from '../../index.js';
import {
  DEFAULT_MEMORY_LIMIT,
  quoteIdent,
  quoteLiteral,
  ROW_GROUP_SIZE as WRITER_ROW_GROUP_SIZE,
} from '../../stores/duckdb/duckdb-database.js';
import { monotonicMs } from './stats.js';

export interface ChildSpec {
  /**
   * `catch-up`: one `engine.run({ untilCaughtUp: true })` (a snapshot on a fresh log, else the stream);
   * `live`: a catch-up run, then `ready`, then a following run recording when each batch is durable,
   * until `stop`; `raw`: a bare pg-logical-replication subscriber recording when each commit arrives;
   * `export`: writes the digits view's current rows from `storePath` to `exportPath` (featureflow's
   * export, or with `reference` DuckDB's own `COPY … TO` parquet of the same rows); `insert`: DuckDB's
   * own `INSERT … SELECT` of the same rows from `storePath` into a table of a new file at
   * `exportPath`, attached as a writer attaches its store (the ceiling of writing these tensors).
   */
  mode: 'catch-up' | 'live' | 'raw' | 'export' | 'insert';
  url: string;
  tables: string[];
  slot: string;
  publication: string;
  /** The DuckDB file (not used by `raw`). */
  storePath?: string;
  ingest?: { batchSize?: number; snapshotBatchSize?: number; heartbeatSeconds?: number };
  /** Keep the example digits view (features/digits) of this source table. */
  digits?: string;
  /** `export`: the file to write (`.parquet` or `.arrow`). */
  exportPath?: string;
  /** `export`: DuckDB's COPY instead of featureflow's export. */
  reference?: boolean;
  /** Also publish the change log's changes as Debezium records to these brokers under this topic prefix. */
  debezium?: { brokers: string[]; topicPrefix: string };
}

/** What a child reports at the end. */
export interface ChildResult {
  /** RSS right after start-up (modules loaded, container built), bytes. */
  startRss: number;
  /** Peak RSS over the child's life (getrusage ru_maxrss), bytes. */
  peakRss: number;
  /** Wall time of the measured run, ms. */
  runMs: number;
  /** CPU time (user + system, every thread) of the whole child, ms: steadier than wall time on a shared machine. */
  cpuMs: number;
  /** `catch-up`, `live`: CPU time (every thread) of the measured run alone, ms (not loading modules, building the container). */
  runCpuMs?: number;
  /** Snapshot rows and the time from the run's start to the durable end of the snapshot, ms. */
  snapshotRows: number;
  snapshotMs: number;
  /** Changes applied from the stream. */
  streamed: number;
  /** `live`/`raw`: [changes or commits seen so far, monotonic ms] per durable batch or received commit. */
  marks: [number, number][];
}

function cpuMs(): number {
  const usage = process.resourceUsage();
  return (usage.userCPUTime + usage.systemCPUTime) / 1000;
}

/** Resolves when the parent asks the child to stop (live and raw runs); set when the child starts. */
let stopped: Promise<void>;

async function main(spec: ChildSpec): Promise<ChildResult> {
  const marks: [number, number][] = [];
  if (spec.mode === 'raw') return raw(spec, marks);
  if (spec.mode === 'export') return exportDigits(spec);
  if (spec.mode === 'insert') return insertDigits(spec);
  const container = await createContainer({
    source: postgres({
      connectionString: spec.url,
      tables: spec.tables,
      slot: spec.slot,
      publication: spec.publication,
    }),
    store: duckdb({ path: spec.storePath! }),
    ingest: spec.ingest,
    ...(spec.debezium ? { publish: debezium(spec.debezium) } : {}),
    ...(spec.digits ? { features: { views: [defineDigitsView(spec.digits)] } } : {}),
    logLevel: process.env.FEATUREFLOW_LOG_LEVEL ?? 'warn',
  });
  try {
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const startRss = process.memoryUsage.rss();
    let snapshotRows = 0;
    let snapshotMs = 0;
    let streamed = 0;
    let start = monotonicMs();
    let startCpu = cpuMs();
    const first = await engine.run({
      untilCaughtUp: true,
      onBatch: (b) => {
        if (b.snapshot) {
          snapshotRows += b.changes;
          if (b.snapshot.done) snapshotMs = monotonicMs() - start;
        } else streamed += b.changes;
      },
    });
    let runMs = monotonicMs() - start;
    let runCpuMs = cpuMs() - startCpu;
    if (spec.mode === 'live') {
      const controller = new AbortController();
      let seen = 0;
      start = monotonicMs();
      startCpu = cpuMs();
      const following = engine.run({
        signal: controller.signal,
        onBatch: (b) => {
          if (b.changes === 0) return;
          seen += b.changes;
          marks.push([seen, monotonicMs()]);
        },
      });
      emit('ready');
      await stopped;
      controller.abort();
      streamed += (await following).changesApplied;
      runMs = monotonicMs() - start;
      runCpuMs = cpuMs() - startCpu;
    } else if (!first.snapshotted) {
      streamed = first.changesApplied;
    }
    return {
      startRss,
      peakRss: process.resourceUsage().maxRSS * 1024,
      runMs,
      cpuMs: cpuMs(),
      runCpuMs,
      snapshotRows,
      snapshotMs,
      streamed,
      marks,
    };
  } finally {
    await closeContainer(container);
  }
}

/** The result of a one-off run (an export, an insert) of `rows` rows, begun at `start` with `startRss`. */
function oneOff(startRss: number, start: number, rows: number): ChildResult {
  return {
    startRss,
    peakRss: process.resourceUsage().maxRSS * 1024,
    runMs: monotonicMs() - start,
    cpuMs: cpuMs(),
    snapshotRows: rows,
    snapshotMs: 0,
    streamed: 0,
    marks: [],
  };
}

/** Writes the digits view's current rows; the run time covers the export alone (the store is open). */
async function exportDigits(spec: ChildSpec): Promise<ChildResult> {
  const view = defineDigitsView(spec.digits);
  // DuckDB's own COPY writes row groups of 122,880 rows (385 MB of these tensors) per thread: the
  // reference gets the memory that takes, so that it measures DuckDB's speed, not a failure.
  const store = await openOfflineStore(spec.storePath!, {
    definitions: { views: [view] },
    ...(spec.reference ? { memoryLimit: '4GB' } : {}),
  });
  if (!(store instanceof DuckDBOfflineStore)) throw new Error('the benchmark store is held by another process');
  try {
    const sql = `SELECT "id", "pixels", "label" FROM "${view.table}__rows" WHERE NOT deleted`;
    const current = Number((await store.connection.runAndReadAll(`SELECT count(*) FROM (${sql})`)).getRows()[0]![0]);
    const startRss = process.memoryUsage.rss();
    const start = monotonicMs();
    let rows = current;
    if (spec.reference)
      await store.connection.run(`COPY (${sql}) TO '${spec.exportPath!.replaceAll("'", "''")}' (FORMAT parquet)`);
    else rows = (await store.export({ view: view.name }, spec.exportPath!)).rows;
    return oneOff(startRss, start, rows);
  } finally {
    store.close();
  }
}

/**
 * DuckDB alone writing the digits view's current rows (`FLOAT[784]` tensors) into a new file, attached
 * with the writer's row group size and memory limit: one `INSERT … SELECT` in one transaction, timed to
 * its commit. No featureflow code runs in the timed part; the figure bounds what any writer of these
 * tensors into DuckDB reaches on this machine.
 */
async function insertDigits(spec: ChildSpec): Promise<ChildResult> {
  const view = defineDigitsView(spec.digits);
  const instance = await DuckDBInstance.create(':memory:', { memory_limit: DEFAULT_MEMORY_LIMIT });
  const c = await instance.connect();
  try {
    await c.run(`ATTACH ${quoteLiteral(spec.storePath!)} AS source (READ_ONLY)`);
    await c.run(`ATTACH ${quoteLiteral(spec.exportPath!)} AS target (ROW_GROUP_SIZE ${WRITER_ROW_GROUP_SIZE})`);
    const rows = `FROM source.${quoteIdent(`${view.table}__rows`)} WHERE NOT deleted`;
    await c.run(`CREATE TABLE target.digits AS SELECT "id", "pixels", "label" ${rows} LIMIT 0`);
    const current = Number((await c.runAndReadAll(`SELECT count(*) ${rows}`)).getRows()[0]![0]);
    const startRss = process.memoryUsage.rss();
    const start = monotonicMs();
    await c.run(`BEGIN; INSERT INTO target.digits SELECT "id", "pixels", "label" ${rows}; COMMIT`);
    return oneOff(startRss, start, current);
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** The reference subscriber: pg-logical-replication as it comes, text pgoutput, no decoding of values. */
async function raw(spec: ChildSpec, marks: [number, number][]): Promise<ChildResult> {
  const startRss = process.memoryUsage.rss();
  const service = new LogicalReplicationService(
    { connectionString: spec.url },
    { acknowledge: { auto: true, timeoutSeconds: 1 } },
  );
  let commits = 0;
  service.on('data', (_lsn: string, msg: Pgoutput.Message) => {
    if (msg.tag === 'commit') marks.push([++commits, monotonicMs()]);
  });
  const start = monotonicMs();
  service.once('start', () => emit('ready'));
  const subscribed = service
    .subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [spec.publication] }), spec.slot)
    .catch((error: unknown) => error);
  await Promise.race([stopped, subscribed]);
  await service.destroy();
  const failure = await Promise.race([subscribed, new Promise((r) => setTimeout(r, 100))]);
  if (failure instanceof Error) throw failure;
  return {
    startRss,
    peakRss: process.resourceUsage().maxRSS * 1024,
    runMs: monotonicMs() - start,
    cpuMs: cpuMs(),
    snapshotRows: 0,
    snapshotMs: 0,
    streamed: commits,
    marks,
  };
}

runChild<ChildSpec, ChildResult>((spec, stop) => {
  stopped = stop;
  return main(spec);
});
