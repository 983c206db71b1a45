/**
 * SQL over the typed tables: each typed row printed in the columns of `_changes` (its key and row as
 * the JSON of `framework/value-json.ts`, the key byte for byte as `encodeKey` writes it), the view
 * `change_log` over every storage, and a native prefilter for key lookups.
 */
import { columnKind, elementKind, type ColumnKind } from '../../../framework/column-rows.js';
import type { Row, TableSchema, Value } from '../../../framework/types.js';
import { keyPrefix } from '../../../framework/value-json.js';
import { quoteIdent, quoteLiteral } from '../duckdb-database.js';
import {
  snapshotLayout,
  streamLayout,
  type SnapshotTableInfo,
  type StoredColumn,
  type StreamTableInfo,
} from './typed-layout.js';

const MAX_SAFE = '9007199254740991';

/** SQL of a TIME as `HH:MM:SS.ffffff` (DuckDB prints the fraction without trailing zeros, or none). */
function timeText(t: string): string {
  const text = `CAST(${t} AS VARCHAR)`;
  return `CASE WHEN length(${text}) = 8 THEN ${text} || '.000000' ELSE rpad(${text}, 15, '0') END`;
}

/** SQL of a TIMETZ as `HH:MM:SS.ffffff+HH:MM`, `:SS` added when the offset has seconds. */
function timetzText(c: string): string {
  const zone = `datepart('timezone', ${c})`;
  const abs = `abs(${zone})`;
  const two = (n: string) => `lpad(CAST(${n} AS VARCHAR), 2, '0')`;
  return (
    `${timeText(`CAST(${c} AS TIME)`)} || CASE WHEN ${zone} >= 0 THEN '+' ELSE '-' END || ${two(`${abs} // 3600`)} || ':' || ` +
    `${two(`${abs} % 3600 // 60`)} || CASE WHEN ${abs} % 60 <> 0 THEN ':' || ${two(`${abs} % 60`)} ELSE '' END`
  );
}

/**
 * SQL of an INTERVAL in ISO 8601 as PostgreSQL prints it with `IntervalStyle=iso_8601`
 * (EncodeInterval): DuckDB's `datepart` splits months and µs with the same truncating divisions
 * (years = months / 12, hours = µs / 3600 s, …), each nonzero part printed with its own sign, the
 * seconds with one sign for their fraction, which has no trailing zeros; `PT0S` when all are zero.
 */
function intervalText(c: string): string {
  const part = (p: string) => `datepart('${p}', ${c})`;
  const iso = (p: string, unit: string) =>
    `CASE WHEN ${part(p)} <> 0 THEN CAST(${part(p)} AS VARCHAR) || '${unit}' ELSE '' END`;
  // µs within the minute: the seconds and their fraction.
  const us = part('microseconds');
  const time = `(${part('hour')} <> 0 OR ${part('minute')} <> 0 OR ${us} <> 0)`;
  const fraction = `CASE WHEN ${us} % 1000000 <> 0 THEN '.' || rtrim(lpad(CAST(abs(${us} % 1000000) AS VARCHAR), 6, '0'), '0') ELSE '' END`;
  const seconds = `CASE WHEN ${us} <> 0 THEN CASE WHEN ${us} < 0 THEN '-' ELSE '' END || CAST(abs(${part('second')}) AS VARCHAR) || ${fraction} || 'S' ELSE '' END`;
  return (
    `CASE WHEN ${part('year')} = 0 AND ${part('month')} = 0 AND ${part('day')} = 0 AND NOT ${time} THEN 'PT0S' ` +
    `ELSE 'P' || ${iso('year', 'Y')} || ${iso('month', 'M')} || ${iso('day', 'D')} || CASE WHEN ${time} THEN 'T' ELSE '' END || ` +
    `${iso('hour', 'H')} || ${iso('minute', 'M')} || ${seconds} END`
  );
}

/** The lambda parameter naming a list's element in the SQL printing it. */
const ELEMENT = '_ff_e';

/**
 * SQL printing a non-null stored value as the JSON text of its Value; for a key column, as `encodeKey`
 * prints it (an int8 within ±2^53 as a number). `element` is a list's element layout.
 */
function jsonOf(kind: ColumnKind, c: string, asKey: boolean, element?: ColumnKind): string {
  switch (kind) {
    case 'int16':
    case 'int32':
    case 'uint32':
      return `CAST(${c} AS VARCHAR)`;
    case 'int64':
      return asKey
        ? `CASE WHEN ${c} BETWEEN -${MAX_SAFE} AND ${MAX_SAFE} THEN CAST(${c} AS VARCHAR) ELSE '"' || CAST(${c} AS VARCHAR) || '"' END`
        : `'"' || CAST(${c} AS VARCHAR) || '"'`;
    case 'float32':
    case 'float64': {
      const x = kind === 'float32' ? `CAST(${c} AS DOUBLE)` : c;
      return `CASE WHEN isnan(${x}) THEN '"NaN"' WHEN isinf(${x}) THEN CASE WHEN ${x} > 0 THEN '"Infinity"' ELSE '"-Infinity"' END ELSE CAST(${x} AS VARCHAR) END`;
    }
    case 'bool':
      return `CASE WHEN ${c} THEN 'true' ELSE 'false' END`;
    case 'date':
      return `'"' || strftime(${c}, '%Y-%m-%d') || '"'`;
    case 'timestamp':
      return `'"' || strftime(${c}, '%Y-%m-%dT%H:%M:%S.%f') || '"'`;
    case 'timestamptz':
      // Through epoch µs: a TIMESTAMPTZ would be printed in the session's time zone.
      return `'"' || strftime(make_timestamp(epoch_us(${c})), '%Y-%m-%dT%H:%M:%S.%fZ') || '"'`;
    case 'text':
      return jsonStringOf(c);
    case 'json':
      // A JSON document's Value is its text, quoted as a JSON string like any text.
      return jsonStringOf(`CAST(${c} AS VARCHAR)`);
    case 'plain-text':
      return `'"' || ${c} || '"'`;
    case 'bytes':
      return `'"\\\\x' || lower(hex(${c})) || '"'`;
    case 'time':
      return `'"' || ${timeText(c)} || '"'`;
    case 'timetz':
      return `'"' || ${timetzText(c)} || '"'`;
    case 'interval':
      return `'"' || ${intervalText(c)} || '"'`;
    case 'list': {
      const item = `CASE WHEN ${ELEMENT} IS NULL THEN 'null' ELSE ${jsonOf(element!, ELEMENT, false)} END`;
      return `'[' || array_to_string(list_transform(${c}, lambda ${ELEMENT}: ${item}), ',') || ']'`;
    }
    case 'value':
      return c;
  }
}

/** JSON's short escapes (as JSON.stringify writes them) of the control characters that have one. */
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

/**
 * SQL quoting a VARCHAR as a JSON string, as `quote` in value-json writes it (JSON.stringify with
 * upper-case `\u00XX`). Plain replaces rather than `to_json`, whose buffers for long strings outgrow a
 * small memory limit; most values take the first branch.
 */
function jsonStringOf(c: string): string {
  let full = `replace(replace(${c}, '\\', '\\\\'), '"', '\\"')`;
  for (let code = 1; code < 32; code++) {
    const escape = SHORT_ESCAPES[code] ?? `\\u00${code.toString(16).toUpperCase().padStart(2, '0')}`;
    full = `replace(${full}, chr(${code}), '${escape}')`;
  }
  return (
    `CASE WHEN NOT regexp_matches(${c}, '["\\\\\\x01-\\x1f]') THEN '"' || ${c} || '"' ` +
    `WHEN NOT regexp_matches(${c}, '[\\x01-\\x1f]') THEN '"' || replace(replace(${c}, '\\', '\\\\'), '"', '\\"') || '"' ` +
    `ELSE '"' || ${full} || '"' END`
  );
}

/** SQL of the JSON object `{"name":value,…}` of the given stored columns, as encodeRow / encodeKey write it. */
function jsonObjectOf(columns: readonly StoredColumn[], asKey: boolean): string {
  if (columns.length === 0) return `'{}'`;
  const parts = columns.map((s, i) => {
    const c = quoteIdent(s.column.name);
    const element = s.kind === 'list' ? elementKind(s.column) : undefined;
    let value = `CASE WHEN ${c} IS NULL THEN 'null' ELSE ${jsonOf(s.kind, c, asKey, element)} END`;
    if (s.override) value = `coalesce(${quoteIdent(s.override)}, ${value})`;
    return `${quoteLiteral((i === 0 ? '{' : ',') + keyPrefix(s.column.name))} || ${value}`;
  });
  return `${parts.join(' || ')} || '}'`;
}

const CHANGES_COLUMNS = 'seq, table_name, op, key, before, after, lsn, commit_lsn, commit_time, xid, schema_version';

/**
 * The key and rows of a typed table's rows in JSON, as `encodeKey` and `encodeRow` write them. With
 * `op` (the stream's op column), a delete's row is its old row, `before`: the key columns (every
 * column under REPLICA IDENTITY FULL), in table order; else the row is `after`.
 */
function keyAndRowSql(schema: TableSchema, stored: readonly StoredColumn[], op?: string): string {
  const keys = schema.keyColumns.map((k) => stored.find((s) => s.column.name === k)!).filter(Boolean);
  const key = `${jsonObjectOf(keys, true)} AS key`;
  if (!op) return `${key}, CAST(NULL AS VARCHAR) AS before, ${jsonObjectOf(stored, false)} AS after`;
  const old = stored.filter((s) => schema.keyColumns.includes(s.column.name));
  const isDelete = `${op} = ${'d'.charCodeAt(0)}`;
  return `${key}, CASE WHEN ${isDelete} THEN ${jsonObjectOf(old, false)} END AS before, CASE WHEN NOT ${isDelete} THEN ${jsonObjectOf(stored, false)} END AS after`;
}

/** A table's snapshot rows in the columns of `_changes` (only those matching `where`, on the storage's columns, if given). */
export function snapshotSelectSql(t: SnapshotTableInfo, where?: string): string {
  const { meta, stored } = snapshotLayout(t.schema.columns);
  return (
    `SELECT ${quoteIdent(meta[0]!.name)} AS seq, ${quoteLiteral(t.table)} AS table_name, 'r' AS op, ${keyAndRowSql(t.schema, stored)}, ` +
    `CAST(${t.lsn} AS UBIGINT) AS lsn, CAST(${t.lsn} AS UBIGINT) AS commit_lsn, ` +
    `to_timestamp(0) + to_microseconds(CAST(${t.commitTime} AS BIGINT)) AS commit_time, CAST(0 AS UBIGINT) AS xid, ` +
    `CAST(${t.schema.version} AS INTEGER) AS schema_version FROM ${quoteIdent(t.storage)}${where ? ` WHERE ${where}` : ''}`
  );
}

/** A table's typed stream rows of one schema version in the columns of `_changes` (only those matching `where`, if given). */
export function streamSelectSql(t: StreamTableInfo, where?: string): string {
  const { meta, stored } = streamLayout(t.schema.columns);
  const [seq, op, lsn, commitLsn, commitTime, xid] = meta.map((m) => quoteIdent(m.name));
  return (
    `SELECT ${seq} AS seq, ${quoteLiteral(t.table)} AS table_name, chr(CAST(${op} AS INTEGER)) AS op, ${keyAndRowSql(t.schema, stored, op)}, ` +
    `${lsn} AS lsn, ${commitLsn} AS commit_lsn, ${commitTime} AS commit_time, ${xid} AS xid, ` +
    `CAST(${t.schema.version} AS INTEGER) AS schema_version FROM ${quoteIdent(t.storage)}${where ? ` WHERE ${where}` : ''}`
  );
}

/**
 * A condition on a typed table's own columns that every row with one of `keys` meets: the first key
 * column stored natively (integers, bool, text) whose values in `keys` all have that column's type,
 * `IN` those values; undefined when no column qualifies. It narrows a key lookup before each row's
 * key is printed as JSON (which is what the lookup then compares).
 */
export function keyPrefilter(schema: TableSchema, keys: readonly Row[]): string | undefined {
  for (const name of schema.keyColumns) {
    const column = schema.columns.find((c) => c.name === name);
    if (!column) continue;
    const kind = columnKind(column);
    const literals = new Set<string>();
    for (const key of keys) literals.add(nativeLiteral(kind, key[name]) ?? '');
    // A JSON column is compared as text: a literal would be cast to JSON, not the column to text.
    const target = kind === 'json' ? `CAST(${quoteIdent(name)} AS VARCHAR)` : quoteIdent(name);
    if (keys.length > 0 && !literals.has('')) return `${target} IN (${[...literals].join(', ')})`;
  }
  return undefined;
}

/** The SQL literal of a key value in a natively stored column of `kind`, or undefined. */
function nativeLiteral(kind: ColumnKind, value: Value | undefined): string | undefined {
  switch (kind) {
    case 'int16':
    case 'int32':
    case 'uint32':
    case 'int64':
      return (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint'
        ? String(value)
        : undefined;
    case 'bool':
      return typeof value === 'boolean' ? String(value) : undefined;
    case 'text':
    case 'json':
    case 'plain-text':
      return typeof value === 'string' ? quoteLiteral(value) : undefined;
    default:
      return undefined;
  }
}

/** `CREATE OR REPLACE VIEW change_log`: `_changes` and every typed table, in the columns of `_changes`. */
export function changeLogViewSql(snapshots: readonly SnapshotTableInfo[], streams: readonly StreamTableInfo[]): string {
  const parts = [
    `SELECT ${CHANGES_COLUMNS} FROM _changes`,
    ...snapshots.map((t) => snapshotSelectSql(t)),
    ...streams.map((t) => streamSelectSql(t)),
  ];
  return `CREATE OR REPLACE VIEW change_log AS ${parts.join('\nUNION ALL ')}`;
}
