import type { Container } from 'inversify';
import type pg from 'pg';
import type { Materialized } from '../framework/features/materialize.js';
import type { IngestOptions, IngestResult } from '../framework/ingest/ingest-engine.js';
import type { ChangeLog } from '../framework/interfaces/index.js';
import { parsePosition, type ChangeBatch, type Row, type TableSchema } from '../framework/types.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { diffAgainstPostgres, readChangeLog, replay, waitFor, type LoggedChange, type TestConfig } from './helpers.js';

/** One `ingest --until-caught-up` run in this process: a fresh container, closed afterwards. */
export async function ingestUntilCaughtUp(config: TestConfig, options: IngestOptions = {}): Promise<IngestResult> {
  const container = await createContainer(config);
  try {
    const engine = await container.getAsync(TOKENS.IngestEngine);
    return await engine.run({ ...options, untilCaughtUp: true });
  } finally {
    await closeContainer(container);
  }
}

/**
 * Runs `hook` after each batch the container's change log applies (the store's transaction still
 * open when the batch is incomplete), before the engine goes on; a throw fails that apply. Call it
 * before anything resolves the change log.
 */
export function afterEachApply(container: Container, hook: (batch: ChangeBatch, log: ChangeLog) => unknown): void {
  container.onActivation(
    TOKENS.ChangeLog,
    (_context, log) =>
      new Proxy(log, {
        get(target, property) {
          if (property === 'apply') {
            return async (batch: ChangeBatch, features: Materialized) => {
              await target.apply(batch, features);
              await hook(batch, target);
            };
          }
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
  );
}

/** The newest stored schema of `table` (qualified) in a change log read by {@link readChangeLog}. */
export function latestSchema(schemas: Map<string, TableSchema>, table: string): TableSchema {
  let best: TableSchema | undefined;
  let bestVersion = 0;
  for (const [id, schema] of schemas) {
    const [name, version] = id.split('#') as [string, string];
    if (name === table && Number(version) > bestVersion) [best, bestVersion] = [schema, Number(version)];
  }
  if (!best) throw new Error(`no schema of ${table} in the change log`);
  return best;
}

/**
 * Reads the change log, replays `table` and has PostgreSQL compare the rebuilt rows with the table.
 * Returns the diff (empty sides when equal), the log and the rebuilt state.
 */
export async function compareWithPostgres(
  client: pg.Client,
  config: TestConfig,
  table: string,
): Promise<{
  diff: { missing: string[]; extra: string[] };
  changes: LoggedChange[];
  schemas: Map<string, TableSchema>;
  state: Map<string, Row>;
}> {
  const qualified = table.includes('.') ? table : `public.${table}`;
  const { changes, schemas } = await readChangeLog(config.store.config.path);
  const state = replay(changes, qualified);
  const diff = await diffAgainstPostgres(client, qualified, state.values(), latestSchema(schemas, qualified).columns);
  return { diff, changes, schemas, state };
}

/** Runs `body` in a transaction and returns its 32-bit xid (as pgoutput reports it). */
export async function inTransaction(client: pg.Client, body: () => Promise<unknown>): Promise<number> {
  await client.query('BEGIN');
  try {
    await body();
    const { rows } = await client.query('SELECT txid_current()::text AS x');
    await client.query('COMMIT');
    return Number(BigInt(rows[0].x) & 0xffffffffn);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** An ingest running in the background of a test (the engine follows until {@link BackgroundIngest.stop}). */
export interface BackgroundIngest {
  /** True once every table's snapshot is durable. */
  readonly snapshotDone: () => boolean;
  /** The last durable stream checkpoint (0 before the first). */
  readonly checkpoint: () => bigint;
  /** Waits for `check`, failing at once if the ingest stops early. */
  until(what: string, check: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** Waits until the durable checkpoint passes the server's current WAL insert position. */
  caughtUp(client: pg.Client, timeoutMs?: number): Promise<void>;
  /** Stops the engine after its current batch; the container stays open. */
  stop(): Promise<void>;
}

/** Starts `engine.run()` (not until caught up) and tracks its progress. */
export function startIngest(
  engine: { run(options: IngestOptions): Promise<IngestResult> },
  options: IngestOptions = {},
): BackgroundIngest {
  const controller = new AbortController();
  let snapshotDone = false;
  let checkpoint = 0n;
  const run = engine.run({
    ...options,
    signal: controller.signal,
    onBatch: (b) => {
      if (b.snapshot?.done) snapshotDone = true;
      if (!b.snapshot && b.complete) checkpoint = b.checkpoint;
      return options.onBatch?.(b);
    },
  });
  const failed = run.then(() => Promise.reject(new Error('the ingest stopped early')));
  failed.catch(() => undefined);
  const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) =>
    Promise.race([waitFor(what, check, timeoutMs), failed]);
  return {
    snapshotDone: () => snapshotDone,
    checkpoint: () => checkpoint,
    until,
    async caughtUp(client, timeoutMs = 60_000) {
      const target = parsePosition((await client.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l);
      await until('the stream to catch up', () => checkpoint >= target, timeoutMs);
    },
    async stop() {
      controller.abort();
      await run;
    },
  };
}
