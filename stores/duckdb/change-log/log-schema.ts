/**
 * The change log's own tables in the DuckDB file, the `current_rows` macro, and the checks and
 * migrations of files written by earlier versions.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { columnKind } from '../../../framework/column-rows.js';
import { FeatureflowError } from '../../../framework/errors.js';
import type { ColumnSchema, VersionedSchema } from '../../../framework/types.js';
import { decodeRow } from '../../../framework/value-json.js';
import { quoteLiteral } from '../duckdb-database.js';
import { encodeKey } from './log-keys.js';
import { NATIVE_SINCE_JSON } from './typed-layout.js';

export const DDL = `
CREATE TABLE IF NOT EXISTS _changes (
  seq BIGINT NOT NULL,
  table_name VARCHAR NOT NULL,
  op VARCHAR NOT NULL,
  key VARCHAR,
  before VARCHAR,
  after VARCHAR,
  lsn UBIGINT NOT NULL,
  commit_lsn UBIGINT NOT NULL,
  commit_time TIMESTAMPTZ NOT NULL,
  xid UBIGINT NOT NULL,
  schema_version INTEGER NOT NULL,
  -- An update's old key, where the old row came with it (a key change, REPLICA IDENTITY FULL).
  old_key VARCHAR
);
CREATE TABLE IF NOT EXISTS _schemas (
  table_name VARCHAR NOT NULL,
  version INTEGER NOT NULL,
  columns VARCHAR NOT NULL,
  key_columns VARCHAR NOT NULL,
  PRIMARY KEY (table_name, version)
);
CREATE TABLE IF NOT EXISTS _checkpoint (
  id INTEGER PRIMARY KEY,
  slot VARCHAR,
  tables VARCHAR,
  lsn UBIGINT,
  snapshot_lsn UBIGINT,
  updated_at TIMESTAMPTZ,
  -- What the source created for this log (JSON, see SourceRecord).
  source VARCHAR,
  -- Per change publisher (ChangePublisher.id), the last commit position it sent (JSON, see encodePublished).
  published VARCHAR
);
CREATE TABLE IF NOT EXISTS _snapshot_tables (
  table_name VARCHAR PRIMARY KEY,
  rows BIGINT NOT NULL,
  done BOOLEAN NOT NULL,
  storage VARCHAR NOT NULL,
  seq_base BIGINT NOT NULL,
  lsn UBIGINT NOT NULL,
  commit_time BIGINT NOT NULL,
  schema_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _stream_tables (
  table_name VARCHAR NOT NULL,
  schema_version INTEGER NOT NULL,
  storage VARCHAR NOT NULL,
  PRIMARY KEY (table_name, schema_version)
);
CREATE TABLE IF NOT EXISTS _table_starts (
  table_name VARCHAR PRIMARY KEY,
  -- NULL: to be read again (see ChangeBatch.rereads)
  lsn UBIGINT
);
`;

/**
 * `current_rows('schema.table')`: the rows a table holds now, rebuilt from the log, one row per row
 * of the table (`key`, `row` as JSON). Changes after the table's last truncate count (a table read
 * again is logged as a truncate and its reads); each read or insert adds a row under its key, each
 * delete removes one, and an update removes one under its old key (the new key when the old row did
 * not come with it) and adds one under the new: so key changes leave no old key behind and, under
 * REPLICA IDENTITY FULL without a primary key, duplicate rows keep their count. A key's row is its
 * latest image.
 */
export const CURRENT_ROWS_MACRO = `
CREATE OR REPLACE MACRO current_rows(tbl) AS TABLE
WITH c AS (
  SELECT l.seq, l.op, l.key, l.after, x.old_key FROM change_log l
    LEFT JOIN (SELECT seq, old_key FROM _changes WHERE old_key IS NOT NULL) x ON x.seq = l.seq
   WHERE l.table_name = tbl
), since AS (SELECT coalesce(max(seq), -1) AS s FROM c WHERE op = 't'),
live AS (SELECT c.* FROM c, since WHERE c.seq > since.s AND c.op <> 't'),
ev AS (
  SELECT key AS k, seq, CASE WHEN op = 'd' THEN -1 ELSE 1 END AS delta, after FROM live
  UNION ALL SELECT coalesce(old_key, key), seq, -1, NULL FROM live WHERE op = 'u'
), counted AS (
  SELECT k, CAST(sum(delta) AS BIGINT) AS n, arg_max(after, seq) FILTER (WHERE after IS NOT NULL) AS row FROM ev GROUP BY k
)
SELECT k AS key, row FROM counted, range(n) WHERE n > 0`;

/**
 * Refuses a file whose change log has the layout of an earlier featureflow, before anything is
 * written to it: snapshots as JSON (no `_snapshot_tables.storage`), typed tables without float
 * overrides and stream tables (no `_stream_tables`), or typed tables holding bytea, arrays, intervals
 * and times as JSON text (VARCHAR), which this version stores natively (BLOB, LIST, INTERVAL, TIME).
 * Typed tables holding json and jsonb as VARCHAR are read and written as they are: a JSON column holds
 * the same text, and the appender copies strings into either alike.
 */
export async function checkLayout(c: DuckDBConnection, path: string): Promise<void> {
  const rows = (
    await c.runAndReadAll(
      `SELECT count(*) FILTER (WHERE column_name = 'storage'), count(*),
              (SELECT count(*) FROM information_schema.tables WHERE table_name = '_stream_tables')
         FROM information_schema.columns WHERE table_name = '_snapshot_tables'`,
    )
  ).getRows()[0] as [bigint, bigint, bigint];
  const typed = Number(rows[1]) > 0;
  if ((typed && (Number(rows[0]) === 0 || Number(rows[2]) === 0)) || (typed && (await hasJsonColumns(c)))) {
    throw new FeatureflowError(
      'FF_STORE_FORMAT',
      `the change log in ${path} was written by an earlier featureflow, whose layout this version does not read; ` +
        'point duckdb({ path }) at a new file (or delete this one) and run `featureflow ingest` to take a new snapshot',
    );
  }
}

/** True when a typed table holds a column as JSON text that this version stores natively. */
async function hasJsonColumns(c: DuckDBConnection): Promise<boolean> {
  const rows = (
    await c.runAndReadAll(
      `SELECT t.storage, s.columns FROM _schemas s JOIN (
         SELECT table_name, schema_version, storage FROM _snapshot_tables
         UNION ALL SELECT table_name, schema_version, storage FROM _stream_tables) t
       ON s.table_name = t.table_name AND s.version = t.schema_version`,
    )
  ).getRows() as [string, string][];
  const wanted = new Set<string>();
  for (const [storage, columns] of rows) {
    for (const column of JSON.parse(columns) as ColumnSchema[])
      if (NATIVE_SINCE_JSON.has(columnKind(column))) wanted.add(JSON.stringify([storage, column.name]));
  }
  if (wanted.size === 0) return false;
  const varchar = (
    await c.runAndReadAll(
      `SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR' AND table_name LIKE '_%' ESCAPE ''`,
    )
  ).getRows() as [string, string][];
  return varchar.some(([table, column]) => wanted.has(JSON.stringify([table, column])));
}

export async function hasColumn(c: DuckDBConnection, table: string, column: string): Promise<boolean> {
  const rows = (
    await c.runAndReadAll(
      'SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2',
      [table, column],
    )
  ).getRows();
  return Number(rows[0]![0]) > 0;
}

/** Whether the file has a table named `table` (its own, not a temporary one). */
export async function hasTable(c: DuckDBConnection, table: string): Promise<boolean> {
  const rows = (
    await c.runAndReadAll('SELECT count(*) FROM duckdb_tables() WHERE table_name = $1 AND NOT temporary', [table])
  ).getRows();
  return Number(rows[0]![0]) > 0;
}

/** Brings a file of an earlier version of this layout up to date (columns added since, filled). */
export async function migrate(c: DuckDBConnection, schemas: readonly VersionedSchema[]): Promise<void> {
  await c.run('ALTER TABLE _checkpoint ADD COLUMN IF NOT EXISTS source VARCHAR');
  await migratePublished(c);
  if (await hasColumn(c, '_changes', 'old_key')) return;
  await c.run('ALTER TABLE _changes ADD COLUMN old_key VARCHAR');
  // Updates that came with their old row: their old key, as the appender now writes it.
  const rows = (
    await c.runAndReadAll(
      `SELECT seq, table_name, before, schema_version FROM _changes WHERE op = 'u' AND before IS NOT NULL`,
    )
  ).getRows() as [bigint, string, string, number][];
  if (rows.length === 0) return;
  const byVersion = new Map(schemas.map((s) => [`${s.table}#${s.version}`, s]));
  const values = rows.map(([seq, table, before, version]) => {
    const schema = byVersion.get(`${table}#${version}`);
    const oldKey = schema ? encodeKey(decodeRow(before, schema.columns), schema.keyColumns) : null;
    return `(${BigInt(seq)}, ${oldKey === null ? 'NULL' : quoteLiteral(oldKey)})`;
  });
  for (let i = 0; i < values.length; i += 1000) {
    await c.run(
      `UPDATE _changes SET old_key = v.k FROM (VALUES ${values.slice(i, i + 1000).join(', ')}) v(s, k) WHERE _changes.seq = v.s`,
    );
  }
}

/**
 * Publisher positions as `_checkpoint.published` holds them: `{"<publisher>": "<position>"}`, each
 * position in decimal (exact beyond 2^53).
 */
export function encodePublished(positions: ReadonlyMap<string, bigint>): string {
  return JSON.stringify(Object.fromEntries([...positions].map(([publisher, position]) => [publisher, `${position}`])));
}

/** The positions {@link encodePublished} wrote (none for NULL). */
export function decodePublished(json: string | null): Map<string, bigint> {
  if (json === null) return new Map();
  return new Map(
    Object.entries(JSON.parse(json) as Record<string, string>).map(([p, position]) => [p, BigInt(position)]),
  );
}

/**
 * Files written before the positions moved into the checkpoint's row kept them in a table of their
 * own, `_published`, an UPDATE of which made every commit of a publishing ingest dearer: its rows
 * become `_checkpoint.published`, and the table goes, in one transaction.
 */
async function migratePublished(c: DuckDBConnection): Promise<void> {
  await c.run('ALTER TABLE _checkpoint ADD COLUMN IF NOT EXISTS published VARCHAR');
  if (!(await hasTable(c, '_published'))) return;
  await c.run('BEGIN');
  try {
    const rows = (await c.runAndReadAll('SELECT publisher, commit_lsn FROM _published')).getRows() as [
      string,
      bigint,
    ][];
    if (rows.length > 0) {
      const positions = new Map(rows.map(([publisher, position]) => [publisher, BigInt(position)]));
      await c.run('UPDATE _checkpoint SET published = $1 WHERE id = 1', [encodePublished(positions)]);
    }
    await c.run('DROP TABLE _published; COMMIT');
  } catch (error) {
    await c.run('ROLLBACK');
    throw error;
  }
}
