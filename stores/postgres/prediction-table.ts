import type pg from 'pg';
import { FeatureflowError } from '../../framework/errors.js';
import type { Value } from '../../framework/types.js';
import {
  PREDICTION_COLUMNS,
  type PredictionColumn,
  type ResolvedPostgresPredictionsConfig,
} from './postgres-predictions-config.js';

/** The table the sink keeps its watermarks in, one row per prediction table, in that table's schema. */
export const WATERMARKS_TABLE = 'featureflow_prediction_watermarks';

/** Types of the columns of a table the sink creates (key columns come first, typed from the config or the first key). */
const CREATED_TYPES: Readonly<Record<PredictionColumn, string>> = {
  model: 'text NOT NULL',
  model_version: 'text NOT NULL',
  label: 'text',
  argmax: 'integer',
  probability: 'double precision',
  output: 'real[] NOT NULL',
  position: 'pg_lsn NOT NULL',
  commit_time: 'timestamptz NOT NULL',
  predicted_at: 'timestamptz NOT NULL',
  received_ms: 'double precision',
  features_ms: 'double precision',
  scored_ms: 'double precision',
};

/** Column types the position may have: compared as PostgreSQL compares them, they order as positions do. */
export type PositionType = 'pg_lsn' | 'bigint' | 'numeric';

/** How one existing table is written: its key columns and the prediction columns it has, with their types. */
export interface TableLayout {
  readonly keys: readonly { readonly name: string; readonly type: string }[];
  readonly columns: readonly { readonly field: PredictionColumn; readonly name: string; readonly type: string }[];
  readonly positionType: PositionType;
}

/** Quotes a PostgreSQL identifier. */
export function quoteIdent(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"';
}

/** Quotes `schema.table` as `"schema"."table"`. */
export function quoteTable(qualified: string): string {
  const dot = qualified.indexOf('.');
  return `${quoteIdent(qualified.slice(0, dot))}.${quoteIdent(qualified.slice(dot + 1))}`;
}

/** The watermarks table of a prediction table (same schema). */
export function watermarksTable(table: string): string {
  return `${quoteIdent(table.slice(0, table.indexOf('.')))}.${quoteIdent(WATERMARKS_TABLE)}`;
}

export function watermarksDdl(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${watermarksTable(table)} (table_name text PRIMARY KEY, position pg_lsn NOT NULL, updated_at timestamptz NOT NULL)`;
}

/** CREATE TABLE of the default layout, key columns typed by `keyTypes`. */
export function createTableSql(config: ResolvedPostgresPredictionsConfig, keyTypes: readonly string[]): string {
  const keys = config.keyColumns.map((k, i) => `${quoteIdent(k.name)} ${keyTypes[i]} NOT NULL`);
  const columns = PREDICTION_COLUMNS.map((f) => `${quoteIdent(config.columns[f])} ${CREATED_TYPES[f]}`);
  const primary = `PRIMARY KEY (${uniqueColumns(config).map(quoteIdent).join(', ')})`;
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(config.table)} (${[...keys, ...columns, primary].join(', ')})`;
}

/** The PostgreSQL type a created table gives a key column, from a key value (the config gave none). */
export function keyTypeOf(value: Value): string {
  if (typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))) return 'bigint';
  if (typeof value === 'number') return 'double precision';
  if (typeof value === 'boolean') return 'boolean';
  if (value instanceof Uint8Array) return 'bytea';
  return 'text';
}

/**
 * Reads an existing table's layout, or null when there is no such table. Refuses (FF_PREDICTIONS_TABLE)
 * a table without the key columns as its primary key or a unique index (an upsert needs one), or
 * without a position column of an ordered type.
 */
export async function readLayout(
  client: pg.Client,
  config: ResolvedPostgresPredictionsConfig,
): Promise<TableLayout | null> {
  const table = quoteTable(config.table);
  const found = (await client.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [table]))
    .rows[0]!.oid;
  if (found === null) return null;
  const types = new Map(
    (
      await client.query<{ name: string; type: string }>(
        `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        [found],
      )
    ).rows.map((r) => [r.name, r.type]),
  );
  const refuse = (what: string, fix: string) =>
    new FeatureflowError(
      'FF_PREDICTIONS_TABLE',
      `the prediction table ${config.table} ${what}; ${fix}, or name a new table in postgresPredictions({ table })`,
    );
  const keyNames = config.keyColumns.map((k) => k.name);
  const uniqueNames = uniqueColumns(config);
  const missing = keyNames.filter((k) => !types.has(k));
  if (missing.length > 0) {
    throw refuse(
      `has no key column ${missing.join(', ')} (it has ${[...types.keys()].join(', ')})`,
      'set postgresPredictions({ keyColumns }) to its key columns',
    );
  }
  const unique = (
    await client.query<{ ok: boolean }>(
      `SELECT EXISTS (
         SELECT 1 FROM pg_index i
          WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[])
            AND (SELECT array_agg(a.attname::text) FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])) @> $2::text[]
       ) AS ok`,
      [found, uniqueNames],
    )
  ).rows[0]!.ok;
  if (!unique) {
    throw refuse(
      `has no primary key or unique index on (${uniqueNames.join(', ')}), which the sink's upsert needs`,
      `add one (ALTER TABLE ${table} ADD PRIMARY KEY (${uniqueNames.map(quoteIdent).join(', ')}))`,
    );
  }
  const positionName = config.columns.position;
  const positionType = types.get(positionName);
  const ordered =
    positionType === 'pg_lsn'
      ? 'pg_lsn'
      : positionType === 'bigint'
        ? 'bigint'
        : positionType?.startsWith('numeric')
          ? 'numeric'
          : undefined;
  if (!ordered) {
    throw refuse(
      positionType === undefined
        ? `has no column ${positionName} for the position of the change each prediction scored (it guards against an older prediction overwriting a newer one)`
        : `has the position column ${positionName} of type ${positionType}, which does not order as positions do`,
      `add or change it to pg_lsn (ALTER TABLE ${table} ${positionType === undefined ? 'ADD COLUMN' : 'ALTER COLUMN'} ${quoteIdent(positionName)} ${positionType === undefined ? '' : 'TYPE '}pg_lsn)`,
    );
  }
  return {
    keys: keyNames.map((name) => ({ name, type: types.get(name)! })),
    columns: PREDICTION_COLUMNS.filter((f) => types.has(config.columns[f])).map((field) => ({
      field,
      name: config.columns[field],
      type: types.get(config.columns[field])!,
    })),
    positionType: ordered,
  };
}

/**
 * The one statement of a write: the predictions as text arrays (`$1…`, one per key and column, each
 * element cast to its column's type), the newest one per entity kept, upserted where newer than the
 * stored row (`position`), and the watermark moved forward, in one round trip and one transaction.
 * The last two parameters are the table's name and the watermark (`X/Y`, or null to leave it).
 */
export function upsertSql(config: ResolvedPostgresPredictionsConfig, layout: TableLayout): string {
  const names = [...layout.keys.map((k) => k.name), ...layout.columns.map((c) => c.name)];
  const types = [...layout.keys.map((k) => k.type), ...layout.columns.map((c) => c.type)];
  const q = names.map(quoteIdent);
  const keys = layout.keys.map((k) => quoteIdent(k.name));
  const position = quoteIdent(config.columns.position);
  const n = names.length;
  const inputs = names.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const aliases = names.map((_, i) => `c${i}`).join(', ');
  const casts = names.map((_, i) => `c${i}::${types[i]} AS ${q[i]}`).join(', ');
  const updates = layout.columns.map((c) => `${quoteIdent(c.name)} = excluded.${quoteIdent(c.name)}`).join(', ');
  const wm = watermarksTable(config.table);
  if (config.keep === 'every') {
    // One row per change scored: a prediction made again after a crash is not stored twice.
    const unique = uniqueColumns(config).map(quoteIdent).join(', ');
    return `WITH u AS (
    SELECT ${casts}, _ff_ord FROM unnest(${inputs}) WITH ORDINALITY AS x(${aliases}, _ff_ord)
  ), n AS (
    SELECT DISTINCT ON (${unique}) * FROM u ORDER BY ${unique}, _ff_ord DESC
  ), up AS (
    INSERT INTO ${quoteTable(config.table)} AS t (${q.join(', ')}) SELECT ${q.join(', ')} FROM n
      ON CONFLICT (${unique}) DO NOTHING
      RETURNING 1
  ), wm AS (
    ${advanceWatermarkSql(wm, n + 1, n + 2)}
  )
  SELECT count(*)::int AS written FROM up`;
  }
  // Newer: a later position, or (where the table keeps the commit time) the same position committed
  // later: a change of a row whose record starts at the snapshot's very position, after its read.
  const commit = layout.columns.find((c) => c.field === 'commit_time');
  const time = commit && quoteIdent(commit.name);
  const newer = time
    ? `excluded.${position} > t.${position} OR (excluded.${position} = t.${position} AND excluded.${time} > t.${time})`
    : `excluded.${position} > t.${position}`;
  return `WITH u AS (
    SELECT ${casts}, _ff_ord FROM unnest(${inputs}) WITH ORDINALITY AS x(${aliases}, _ff_ord)
  ), n AS (
    SELECT DISTINCT ON (${keys.join(', ')}) * FROM u ORDER BY ${keys.join(', ')}, ${position} DESC, ${time ? `${time} DESC, ` : ''}_ff_ord DESC
  ), up AS (
    INSERT INTO ${quoteTable(config.table)} AS t (${q.join(', ')}) SELECT ${q.join(', ')} FROM n
      ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${updates}
      WHERE t.${position} IS NULL OR ${newer}
      RETURNING 1
  ), wm AS (
    ${advanceWatermarkSql(wm, n + 1, n + 2)}
  )
  SELECT count(*)::int AS written FROM up`;
}

/**
 * The columns a table's primary key (or a unique index) must cover: the key columns; with every
 * prediction kept, also the change's position and commit time (a change committed right after a
 * snapshot may start at the snapshot's very position: the commit time tells the two apart).
 */
function uniqueColumns(config: ResolvedPostgresPredictionsConfig): string[] {
  const keys = config.keyColumns.map((k) => k.name);
  return config.keep === 'every' ? [...keys, config.columns.position, config.columns.commit_time] : keys;
}

/** The watermark's upsert alone (a write without predictions, or before the table exists): `$1` table name, `$2` position. */
export function watermarkSql(config: ResolvedPostgresPredictionsConfig): string {
  return advanceWatermarkSql(watermarksTable(config.table), 1, 2);
}

function advanceWatermarkSql(wm: string, nameParam: number, positionParam: number): string {
  return `INSERT INTO ${wm} AS w (table_name, position, updated_at)
      SELECT $${nameParam}::text, p, now() FROM (SELECT $${positionParam}::pg_lsn AS p) x WHERE p IS NOT NULL
      ON CONFLICT (table_name) DO UPDATE SET position = greatest(w.position, excluded.position), updated_at = excluded.updated_at`;
}
