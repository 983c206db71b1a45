import { FeatureflowError } from '../../framework/errors.js';
import { qualifyTable } from '../../framework/types.js';

/** The fields of a prediction the sink writes, each to the column of its name unless renamed. */
export const PREDICTION_COLUMNS = [
  'model',
  'model_version',
  'label',
  'argmax',
  'probability',
  'output',
  'position',
  'commit_time',
  'predicted_at',
  'received_ms',
  'features_ms',
  'scored_ms',
] as const;

export type PredictionColumn = (typeof PREDICTION_COLUMNS)[number];

/** The PostgreSQL prediction sink's settings, as `postgresPredictions({ … })` takes them. */
export interface PostgresPredictionsConfig {
  /**
   * The table holding each entity's newest prediction, `schema.table` or `table` (schema `public`).
   * Required. Created when missing (see the adapter's `index.ts` for the layout); an existing table
   * needs the key columns as its primary key (or a unique index) and a `position` column (`pg_lsn`,
   * `bigint` or `numeric`); the other columns are written where the table has them. One table holds
   * one model's predictions.
   */
  readonly table: string;
  /**
   * Connection string. Default: `DATABASE_URL`, else node-postgres reads `PGHOST`, `PGPORT`, `PGUSER`,
   * `PGPASSWORD`, `PGDATABASE` itself. Never logged.
   */
  readonly connectionString?: string;
  /**
   * The table's key columns, in the order of the entity's keys: names (a created table types them
   * from the first prediction's key: integers `bigint`, other numbers `double precision`, strings
   * `text`, booleans `boolean`, bytes `bytea`), or names with their PostgreSQL types, e.g.
   * `{ id: 'integer' }`. Default `['id']`.
   */
  readonly keyColumns?: readonly string[] | Readonly<Record<string, string>>;
  /**
   * Other names for the prediction's columns, e.g. `{ argmax: 'digit' }` to write the recognised digit
   * into `digit`. Default: each column has its field's name (`model`, `model_version`, `label`,
   * `argmax`, `probability`, `output`, `position`, `commit_time`, `predicted_at`, `received_ms`,
   * `features_ms`, `scored_ms`).
   */
  readonly columns?: Readonly<Partial<Record<PredictionColumn, string>>>;
  /**
   * Which predictions the table keeps: `newest`, each entity's newest (keyed by the key columns,
   * upserted when newer), or `every`, one row per prediction (keyed by the key columns, the position
   * and the commit time: an audit trail, and the proof that no prediction was lost or made twice when several
   * `serve` processes share the work). Default `newest`.
   */
  readonly keep?: 'newest' | 'every';
}

/** The settings with every default filled in; frozen. */
export interface ResolvedPostgresPredictionsConfig {
  readonly connectionString?: string;
  /** Qualified: `schema.table`. */
  readonly table: string;
  readonly keyColumns: readonly { readonly name: string; readonly type: string | null }[];
  readonly columns: Readonly<Record<PredictionColumn, string>>;
  readonly keep: 'newest' | 'every';
}

/**
 * Validates the settings (every problem listed at once, with its fix) and fills defaults: explicit
 * value, then `DATABASE_URL` as node-postgres users expect, then defaults.
 */
export function resolvePostgresPredictionsConfig(
  config: PostgresPredictionsConfig,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedPostgresPredictionsConfig {
  const problems: string[] = [];
  const table = config?.table;
  if (typeof table !== 'string' || table.split('.').length > 2 || table.split('.').some((p) => p.length === 0)) {
    problems.push(
      `table ${JSON.stringify(table)} must be "table" or "schema.table", e.g. postgresPredictions({ table: 'digit_predictions' })`,
    );
  }
  const given = config?.keyColumns ?? ['id'];
  const keyColumns = Array.isArray(given)
    ? (given as readonly unknown[]).map((name) => ({ name: name as string, type: null as string | null }))
    : Object.entries(given as Record<string, unknown>).map(([name, type]) => ({ name, type: type as string | null }));
  if (keyColumns.length === 0) problems.push('keyColumns must name at least one column, e.g. ["id"]');
  for (const k of keyColumns) {
    if (typeof k.name !== 'string' || k.name.length === 0)
      problems.push(`keyColumns entry ${JSON.stringify(k.name)} must be a column name`);
    if (k.type !== null && (typeof k.type !== 'string' || k.type.trim().length === 0 || /;/.test(k.type))) {
      problems.push(
        `keyColumns type of ${k.name} must be a PostgreSQL type name such as 'integer', got ${JSON.stringify(k.type)}`,
      );
    }
  }
  const unknown = Object.keys(config?.columns ?? {}).filter(
    (f) => !(PREDICTION_COLUMNS as readonly string[]).includes(f),
  );
  if (unknown.length > 0)
    problems.push(`columns has no field ${unknown.join(', ')}; the fields are ${PREDICTION_COLUMNS.join(', ')}`);
  const columns = Object.fromEntries(PREDICTION_COLUMNS.map((f) => [f, config?.columns?.[f] ?? f])) as Record<
    PredictionColumn,
    string
  >;
  for (const [field, name] of Object.entries(columns)) {
    if (typeof name !== 'string' || name.length === 0) problems.push(`columns.${field} must be a column name`);
  }
  const names = [...keyColumns.map((k) => k.name), ...Object.values(columns)];
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  if (repeated.length > 0)
    problems.push(
      `column ${[...new Set(repeated)].join(', ')} is named twice (key columns and prediction columns need names of their own)`,
    );
  const keep = config?.keep ?? 'newest';
  if (keep !== 'newest' && keep !== 'every')
    problems.push(`keep must be 'newest' or 'every', got ${JSON.stringify(keep)}`);
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid postgresPredictions({ … }) settings:\n  - ${problems.join('\n  - ')}`,
    );
  }
  const connectionString = config.connectionString ?? env.DATABASE_URL ?? undefined;
  return Object.freeze({
    ...(connectionString ? { connectionString } : {}),
    table: qualifyTable(table),
    keyColumns: Object.freeze(keyColumns.map((k) => Object.freeze(k))),
    columns: Object.freeze(columns),
    keep,
  });
}
