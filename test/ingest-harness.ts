import type pg from 'pg';
import type { ResolvedConfig } from '../framework/config';
import type { IngestOptions, IngestResult } from '../framework/ingest-engine';
import type { Row, TableSchema } from '../framework/types';
import { closeContainer, createContainer, TOKENS } from '../index';
import { diffAgainstPostgres, readChangeLog, replay, type LoggedChange } from './helpers';

/** One `ingest --until-caught-up` run in this process: a fresh container, closed afterwards. */
export async function ingestUntilCaughtUp(config: ResolvedConfig, options: IngestOptions = {}): Promise<IngestResult> {
  const container = await createContainer(config);
  try {
    const engine = await container.getAsync(TOKENS.IngestEngine);
    return await engine.run({ ...options, untilCaughtUp: true });
  } finally {
    await closeContainer(container);
  }
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
  config: ResolvedConfig,
  table: string,
): Promise<{ diff: { missing: string[]; extra: string[] }; changes: LoggedChange[]; schemas: Map<string, TableSchema>; state: Map<string, Row> }> {
  const qualified = table.includes('.') ? table : `public.${table}`;
  const { changes, schemas } = await readChangeLog(config.store.path);
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
