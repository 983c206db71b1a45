import { randomBytes } from 'node:crypto';
import { extname } from 'node:path';
import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  INTEGER,
  SMALLINT,
  TIMESTAMP,
  TINYINT,
  UBIGINT,
  UINTEGER,
  USMALLINT,
  UTINYINT,
  TIMESTAMPTZ,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';
import { toMicros } from '../../../framework/features/instant.js';
import type { SpineInput } from '../../../framework/interfaces/offline-store.js';
import { quoteIdent } from '../duckdb-database.js';

/** A spine loaded into a temporary table of the connection. */
export interface LoadedSpine {
  /** Temp table holding the spine as given, in order (`rowid` is the spine row). */
  readonly table: string;
  readonly rows: number;
  /** Column name → DuckDB type name. */
  readonly columns: ReadonlyMap<string, string>;
  /** Where it came from (a path, `arrow`, `rows`), for the manifest. */
  readonly source: string;
}

const CHUNK_ROWS = 2048;

function tempName(): string {
  return `_ff_spine_${randomBytes(4).toString('hex')}`;
}

async function describe(c: DuckDBConnection, table: string): Promise<Map<string, string>> {
  const rows = (await c.runAndReadAll(`DESCRIBE ${quoteIdent(table)}`)).getRows();
  return new Map(rows.map((r) => [String(r[0]), String(r[1])]));
}

/** Appends columns (JS arrays of DuckDB values) to a new temp table of the given types. */
async function createFromColumns(
  c: DuckDBConnection,
  names: string[],
  types: DuckDBType[],
  sqlTypes: string[],
  columns: DuckDBValue[][],
  rows: number,
): Promise<string> {
  const table = tempName();
  await c.run(
    `CREATE TEMP TABLE ${quoteIdent(table)} (${names.map((n, i) => `${quoteIdent(n)} ${sqlTypes[i]}`).join(', ')})`,
  );
  const appender = await c.createAppender(table, 'main', 'temp');
  for (let s = 0; s < rows; s += CHUNK_ROWS) {
    const e = Math.min(s + CHUNK_ROWS, rows);
    const chunk = DuckDBDataChunk.create(types, e - s);
    chunk.setColumns(columns.map((col) => col.slice(s, e)));
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  return table;
}

/** Raw microsecond values of an Arrow timestamp/date vector (exact, unlike `get`, which gives milliseconds). */
function arrowMicros(vector: arrow.Vector): (bigint | null)[] {
  const out: (bigint | null)[] = [];
  const type = vector.type as arrow.Timestamp | arrow.Date_;
  for (const data of vector.data) {
    for (let i = 0; i < data.length; i++) {
      if (!data.getValid(i)) {
        out.push(null);
        continue;
      }
      if (arrow.DataType.isDate(type)) {
        const v = data.values[data.offset + i] as number | bigint;
        out.push(type.unit === arrow.DateUnit.DAY ? BigInt(v) * 86_400_000_000n : BigInt(v) * 1000n);
        continue;
      }
      const raw = BigInt(data.values[data.offset + i] as bigint);
      const unit = (type as arrow.Timestamp).unit;
      out.push(
        unit === arrow.TimeUnit.SECOND
          ? raw * 1_000_000n
          : unit === arrow.TimeUnit.MILLISECOND
            ? raw * 1000n
            : unit === arrow.TimeUnit.MICROSECOND
              ? raw
              : raw / 1000n,
      );
    }
  }
  return out;
}

/** Arrow integer columns narrower than 64 bits keep their width (an Int32 key stays INTEGER). */
const ARROW_INTS: Record<string, { duck: DuckDBType; sql: string } | undefined> = {
  '8': { duck: TINYINT, sql: 'TINYINT' },
  '16': { duck: SMALLINT, sql: 'SMALLINT' },
  '32': { duck: INTEGER, sql: 'INTEGER' },
  U8: { duck: UTINYINT, sql: 'UTINYINT' },
  U16: { duck: USMALLINT, sql: 'USMALLINT' },
  U32: { duck: UINTEGER, sql: 'UINTEGER' },
};

function fromArrowType(type: arrow.DataType): { duck: DuckDBType; sql: string; read: (v: unknown) => DuckDBValue } {
  if (arrow.DataType.isInt(type)) {
    const int = type as arrow.Int;
    const small = ARROW_INTS[`${int.isSigned ? '' : 'U'}${int.bitWidth}`];
    if (small) return { ...small, read: (v) => Number(v) };
    return int.isSigned
      ? { duck: BIGINT, sql: 'BIGINT', read: (v) => BigInt(v as number | bigint) }
      : { duck: UBIGINT, sql: 'UBIGINT', read: (v) => BigInt(v as number | bigint) };
  }
  if (arrow.DataType.isFloat(type)) return { duck: DOUBLE, sql: 'DOUBLE', read: (v) => v as number };
  if (arrow.DataType.isBool(type)) return { duck: BOOLEAN, sql: 'BOOLEAN', read: (v) => v as boolean };
  return { duck: VARCHAR, sql: 'VARCHAR', read: (v) => (typeof v === 'string' ? v : String(v)) };
}

async function loadArrow(c: DuckDBConnection, spine: arrow.Table): Promise<string> {
  const names: string[] = [];
  const types: DuckDBType[] = [];
  const sqlTypes: string[] = [];
  const columns: DuckDBValue[][] = [];
  for (const field of spine.schema.fields) {
    const vector = spine.getChild(field.name)!;
    names.push(field.name);
    if (arrow.DataType.isTimestamp(field.type) || arrow.DataType.isDate(field.type)) {
      const zoned = arrow.DataType.isTimestamp(field.type) && !!(field.type as arrow.Timestamp).timezone;
      types.push(zoned || arrow.DataType.isDate(field.type) ? TIMESTAMPTZ : TIMESTAMP);
      sqlTypes.push(zoned || arrow.DataType.isDate(field.type) ? 'TIMESTAMPTZ' : 'TIMESTAMP');
      columns.push(
        arrowMicros(vector).map((m) =>
          m === null
            ? null
            : zoned || arrow.DataType.isDate(field.type)
              ? new DuckDBTimestampTZValue(m)
              : new DuckDBTimestampValue(m),
        ),
      );
      continue;
    }
    const { duck, sql, read } = fromArrowType(field.type);
    types.push(duck);
    sqlTypes.push(sql);
    const values = new Array<DuckDBValue>(spine.numRows);
    for (let i = 0; i < spine.numRows; i++) {
      const v = vector.get(i);
      values[i] = v === null || v === undefined ? null : read(v);
    }
    columns.push(values);
  }
  return createFromColumns(c, names, types, sqlTypes, columns, spine.numRows);
}

async function loadRows(
  c: DuckDBConnection,
  rows: readonly Record<string, unknown>[],
  timestampColumn: string,
  keyTypes: ReadonlyMap<string, string>,
): Promise<string> {
  if (rows.length === 0) {
    // No row to take columns from: the keys and the time column, for an empty training set.
    const table = tempName();
    const columns = [...keyTypes].map(([name, type]) => `${quoteIdent(name)} ${type}`);
    await c.run(
      `CREATE TEMP TABLE ${quoteIdent(table)} (${[...columns, `${quoteIdent(timestampColumn)} TIMESTAMPTZ`].join(', ')})`,
    );
    return table;
  }
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const types: DuckDBType[] = [];
  const sqlTypes: string[] = [];
  const columns: DuckDBValue[][] = [];
  for (const name of names) {
    const values = rows.map((r) => r[name] ?? null);
    const present = values.filter((v) => v !== null);
    if (name === timestampColumn) {
      types.push(TIMESTAMPTZ);
      sqlTypes.push('TIMESTAMPTZ');
      columns.push(
        values.map((v) => {
          if (v === null) return null;
          try {
            return new DuckDBTimestampTZValue(toMicros(v as Date | string | bigint));
          } catch (error) {
            throw new FeatureflowError(
              'FF_EXPORT',
              `spine column ${name} holds ${JSON.stringify(String(v))}: ${(error as Error).message}; give a Date or an ISO 8601 string`,
            );
          }
        }),
      );
    } else if (
      present.length > 0 &&
      present.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v)))
    ) {
      types.push(BIGINT);
      sqlTypes.push('BIGINT');
      columns.push(values.map((v) => (v === null ? null : BigInt(v as number))));
    } else if (present.length > 0 && present.every((v) => typeof v === 'number')) {
      types.push(DOUBLE);
      sqlTypes.push('DOUBLE');
      columns.push(values as DuckDBValue[]);
    } else if (present.length > 0 && present.every((v) => typeof v === 'boolean')) {
      types.push(BOOLEAN);
      sqlTypes.push('BOOLEAN');
      columns.push(values as DuckDBValue[]);
    } else {
      types.push(VARCHAR);
      sqlTypes.push('VARCHAR');
      columns.push(values.map((v) => (v === null ? null : v instanceof Date ? v.toISOString() : String(v))));
    }
  }
  return createFromColumns(c, names, types, sqlTypes, columns, rows.length);
}

async function loadFile(c: DuckDBConnection, path: string): Promise<string> {
  const ext = extname(path).toLowerCase();
  const reader = ext === '.parquet' ? 'read_parquet' : ext === '.csv' ? 'read_csv' : null;
  if (!reader)
    throw new FeatureflowError(
      'FF_EXPORT',
      `spine file ${path} is neither .parquet nor .csv; give a Parquet or CSV file`,
    );
  const table = tempName();
  try {
    await c.run(`CREATE TEMP TABLE ${quoteIdent(table)} AS SELECT * FROM ${reader}($1)`, [path]);
  } catch (error) {
    throw new FeatureflowError('FF_EXPORT', `spine file ${path} cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return table;
}

/**
 * JS values carry no column type, so the entity keys of a spine of rows take the type of the key they
 * join (an int4 key comes back INTEGER, not BIGINT), where every value fits it.
 */
async function typeKeys(c: DuckDBConnection, table: string, keyTypes: ReadonlyMap<string, string>): Promise<void> {
  const columns = await describe(c, table);
  for (const [name, type] of keyTypes) {
    const given = columns.get(name);
    if (given === undefined || given === type) continue;
    const col = quoteIdent(name);
    const misfits = await c.runAndReadAll(
      `SELECT count(*) FROM ${quoteIdent(table)} WHERE ${col} IS NOT NULL AND TRY_CAST(${col} AS ${type}) IS NULL`,
    );
    if (Number(misfits.getRows()[0]![0]) === 0)
      await c.run(`ALTER TABLE ${quoteIdent(table)} ALTER COLUMN ${col} TYPE ${type}`);
  }
}

/**
 * Loads a spine into a temp table (in its given order); drop it with `DROP TABLE` when done.
 * `keyTypes` (key column → DuckDB type) types the keys of a spine given as JS rows.
 */
export async function loadSpine(
  c: DuckDBConnection,
  spine: SpineInput,
  timestampColumn: string,
  keyTypes: ReadonlyMap<string, string> = new Map(),
): Promise<LoadedSpine> {
  let table: string;
  if (typeof spine === 'string') table = await loadFile(c, spine);
  else if (spine instanceof arrow.Table) table = await loadArrow(c, spine);
  else {
    table = await loadRows(c, spine, timestampColumn, keyTypes);
    await typeKeys(c, table, keyTypes);
  }
  const rows = Number((await c.runAndReadAll(`SELECT count(*) FROM ${quoteIdent(table)}`)).getRows()[0]![0]);
  const source = typeof spine === 'string' ? spine : spine instanceof arrow.Table ? 'arrow' : 'rows';
  return { table, rows, columns: await describe(c, table), source };
}

/** SQL turning the spine's time column into TIMESTAMPTZ: naive timestamps and strings without an offset are UTC. */
export function spineTimeExpression(column: string, type: string): string {
  const col = quoteIdent(column);
  const t = type.toUpperCase();
  if (t === 'TIMESTAMP WITH TIME ZONE' || t === 'TIMESTAMPTZ') return col;
  if (t.startsWith('TIMESTAMP') || t === 'DATE') return `timezone('UTC', ${col}::TIMESTAMP)`;
  if (t === 'VARCHAR') {
    return `CASE WHEN regexp_matches(${col}, '(Z|z|[+-]\\d\\d(:?\\d\\d)?)$') THEN ${col}::TIMESTAMPTZ ELSE timezone('UTC', ${col}::TIMESTAMP) END`;
  }
  throw new FeatureflowError(
    'FF_EXPORT',
    `spine column ${column} has type ${type}; give event times as timestamps or ISO 8601 strings`,
  );
}
