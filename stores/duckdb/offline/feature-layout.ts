import type { DuckDBConnection } from '@duckdb/node-api';
import { FeatureflowError } from '../../../framework/errors.js';
import { quoteIdent } from '../duckdb-database.js';

/**
 * Physical layout of a view version's history.
 *
 * The rows live in an append-only base table `<table>__rows` (entity keys, features, `valid_from`,
 * `lsn`, `op`, `deleted`, and `seq`, the order rows were written in), filled only by appends: applying
 * a batch never rewrites earlier rows, so it costs O(batch) however long the history is. Within one
 * instant the last change of an entity wins: a row that a later one of the same entity and the same
 * `valid_from` supersedes is removed when that one is written, so (keys, valid_from) is unique.
 *
 * `<table>` (`fv_<name>_v<version>`) is a VIEW with the user-visible columns: keys, features,
 * `valid_from`, `valid_to` (the next version's `valid_from`; null while current), `lsn`, `op`,
 * `deleted`. Reads that do not need `valid_to` (latest, as of, point-in-time joins) go to the base
 * table directly.
 */
export const ROWS_SUFFIX = '__rows';

/** The base table of a view version's history table (or view) name. */
export function rowsTableOf(table: string): string {
  return `${table}${ROWS_SUFFIX}`;
}

/** QUALIFY condition keeping each entity's newest row of a base table (`keys` quoted; ties in valid_from: the last written). */
export function newestRow(keys: readonly string[]): string {
  return `row_number() OVER (PARTITION BY ${keys.join(', ')} ORDER BY valid_from DESC, seq DESC) = 1`;
}

/** CREATE VIEW of the user-visible history over the base table. */
export function historyViewSql(table: string, keys: readonly string[], features: readonly string[]): string {
  const k = keys.map(quoteIdent);
  const columns = [...k, ...features.map(quoteIdent), 'valid_from', 'valid_to', 'lsn', 'op', 'deleted'];
  return (
    `CREATE OR REPLACE VIEW ${quoteIdent(table)} AS SELECT ${columns.join(', ')} FROM (` +
    `SELECT *, lead(valid_from) OVER (PARTITION BY ${k.join(', ')} ORDER BY valid_from, seq) AS valid_to FROM ${quoteIdent(rowsTableOf(table))}` +
    `) WHERE valid_to IS DISTINCT FROM valid_from`
  );
}

/** Whether the append-only base table of `table` exists. */
export async function hasRowsTable(c: DuckDBConnection, table: string): Promise<boolean> {
  const rows = (
    await c.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = $1 AND NOT temporary`, [
      rowsTableOf(table),
    ])
  ).getRows();
  return Number(rows[0]![0]) > 0;
}

/** Refuses a view version whose history was written in the older layout (a table updated in place). */
export async function checkLayout(c: DuckDBConnection, name: string, version: number, table: string): Promise<void> {
  if (await hasRowsTable(c, table)) return;
  throw new FeatureflowError(
    'FF_FEATURE_VERSION',
    `feature view ${name} v${version}: its history ${table} was written by an older featureflow, which kept it in a table updated in place; ` +
      `this one appends to ${rowsTableOf(table)} and reads ${table} as a view over it. ` +
      `Bump the view's version to build the new layout from the change log, or delete the store and run \`featureflow ingest\` again`,
  );
}

/** Drops a view version's history in either layout (view + base table, or an older table). */
export async function dropHistory(c: DuckDBConnection, table: string): Promise<void> {
  const kinds = (
    await c.runAndReadAll(
      `SELECT 'view' FROM duckdb_views() WHERE view_name = $1 AND NOT temporary UNION ALL SELECT 'table' FROM duckdb_tables() WHERE table_name = $1 AND NOT temporary`,
      [table],
    )
  ).getRows() as [string][];
  for (const [kind] of kinds) await c.run(`DROP ${kind === 'view' ? 'VIEW' : 'TABLE'} IF EXISTS ${quoteIdent(table)}`);
  await c.run(`DROP TABLE IF EXISTS ${quoteIdent(rowsTableOf(table))}`);
}
