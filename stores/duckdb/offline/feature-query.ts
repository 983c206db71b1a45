import type { FeatureType } from '../../../framework/features/feature-types.js';
import { formatMicros } from '../../../framework/features/instant.js';
import { quoteIdent } from '../duckdb-database.js';
import type { ViewRecord } from './feature-catalog.js';
import { newestRow, rowsTableOf } from './feature-layout.js';

/**
 * The point-in-time rule of training sets, as exports record it in their manifest.
 */
export const POINT_IN_TIME_RULE =
  "For a spine row (key, t), each feature view contributes the values of the entity's newest version with " +
  'valid_from <= t (and, with a ttl, valid_from >= t - ttl); a version that records a deletion (deleted at or ' +
  'before t), a version older than the ttl, and an unknown key all yield nulls. valid_from is the commit time ' +
  'of the PostgreSQL transaction that made the version.';

/** The rule of `asOf` exports. */
export const AS_OF_RULE =
  "Each entity with a version valid at T (valid_from <= T < valid_to, not a deletion), with that version's values.";
/** The rule of latest exports. */
export const LATEST_RULE = "Each entity's current version (valid_to IS NULL, not a deletion), as of the watermark LSN.";

/** A view version and the features selected from it. */
export interface ViewSelection {
  readonly record: ViewRecord;
  readonly features: readonly string[];
  readonly types: ReadonlyMap<string, FeatureType>;
}

/** A query over history tables, ready to be read as Arrow or written to a file. */
export interface FeatureQuery {
  readonly kind: 'latest' | 'asOf' | 'trainingSet';
  readonly sql: string;
  readonly views: readonly ViewSelection[];
  /** Per output column: `featureflow.shape` / `featureflow.dtype` of tensor features. */
  readonly fieldMetadata: ReadonlyMap<string, ReadonlyMap<string, string>>;
  readonly asOf?: bigint;
  readonly spine?: { readonly source: string; readonly rows: number; readonly timestampColumn: string };
  /** The ttl applied per view (µs), for the manifest. */
  readonly ttl?: Readonly<Record<string, string | null>>;
  readonly rule: string;
  /**
   * The query streams: DuckDB reads the stored rows in one pass, holding no window nor sort of
   * whole rows, so its memory beyond a few chunks only caches the table's blocks.
   */
  readonly streams?: boolean;
  /** Drops the temp tables the query reads (a spine). */
  cleanup(): Promise<void>;
}

export function tensorMetadata(
  selection: ViewSelection,
  outputName: (feature: string) => string,
): [string, Map<string, string>][] {
  const out: [string, Map<string, string>][] = [];
  for (const f of selection.features) {
    const type = selection.types.get(f)!;
    if (type.kind === 'tensor') {
      out.push([
        outputName(f),
        new Map([
          ['featureflow.shape', JSON.stringify(type.shape)],
          ['featureflow.dtype', type.dtype],
        ]),
      ]);
    }
  }
  return out;
}

/** A TIMESTAMPTZ literal, exact to the microsecond. */
export function timestampLiteral(micros: bigint): string {
  return `TIMESTAMPTZ '${formatMicros(micros)}'`;
}

/**
 * SELECT of one view's current rows (latest) or of its rows valid at `at`: per entity, the newest
 * row (with valid_from <= at) of the append-only base table, unless it records a deletion. Equal to
 * `valid_to IS NULL` (or `valid_from <= at < valid_to`) on the history view, without deriving valid_to.
 */
export function valuesAtSql(selection: ViewSelection, at: bigint | null): string {
  const keys = selection.record.keyColumns!.map((k) => quoteIdent(k.name));
  const columns = [...keys, ...selection.features.map(quoteIdent), 'valid_from'];
  const when = at === null ? '' : ` WHERE valid_from <= ${timestampLiteral(at)}`;
  return `SELECT ${columns.join(', ')} FROM ${quoteIdent(rowsTableOf(selection.record.table))}${when} QUALIFY ${newestRow(keys)} AND NOT deleted ORDER BY ${keys.join(', ')}`;
}

/** The rowids of the rows {@link valuesAtSql} returns, chosen on the narrow columns alone. */
function pickedRowsSql(selection: ViewSelection, at: bigint | null): string {
  const keys = selection.record.keyColumns!.map((k) => quoteIdent(k.name));
  const when = at === null ? '' : ` WHERE valid_from <= ${timestampLiteral(at)}`;
  return `SELECT rowid AS _ff_row, ${keys.join(', ')} FROM ${quoteIdent(rowsTableOf(selection.record.table))}${when} QUALIFY ${newestRow(keys)} AND NOT deleted`;
}

/**
 * One row, one column: whether the rows {@link valuesAtSql} returns lie in the base table in key
 * order (their rowids ascend with their keys), as a snapshot's rows and rows appended in key order
 * do. Reads only the keys, valid_from, seq and deleted.
 */
export function pickedInKeyOrderSql(selection: ViewSelection, at: bigint | null): string {
  const keys = selection.record.keyColumns!.map((k) => quoteIdent(k.name));
  return `SELECT count(*) = 0 FROM (SELECT _ff_row, lag(_ff_row) OVER (ORDER BY ${keys.join(', ')}) AS _ff_before FROM (${pickedRowsSql(selection, at)})) WHERE _ff_row < _ff_before`;
}

/**
 * The base table's rowid ranges holding exactly the rows {@link valuesAtSql} returns (each range
 * all returned rows, and nothing but them), in rowid order, at most `limit + 1` of them. Reads only
 * the narrow columns.
 */
export function pickedRangesSql(selection: ViewSelection, at: bigint | null, limit: number): string {
  const table = quoteIdent(rowsTableOf(selection.record.table));
  return (
    `SELECT min(_ff_row), max(_ff_row) FROM (SELECT _ff_row, _ff_picked, sum(CASE WHEN _ff_picked THEN 0 ELSE 1 END) OVER (ORDER BY _ff_row ROWS UNBOUNDED PRECEDING) AS _ff_run FROM ` +
    `(SELECT rowid AS _ff_row, rowid IN (SELECT _ff_row FROM (${pickedRowsSql(selection, at)})) AS _ff_picked FROM ${table})) ` +
    `WHERE _ff_picked GROUP BY _ff_run ORDER BY 1 LIMIT ${limit + 1}`
  );
}

/**
 * The rows of {@link valuesAtSql} when they lie in the base table in key order
 * ({@link pickedInKeyOrderSql}), in a few rowid ranges ({@link pickedRangesSql}): one pass of the
 * table, which DuckDB returns in the table's order through a filter, so the rows stream: no window
 * nor sort holds every row's features (300k 28×28 float32 tensors are 940 MB).
 */
export function valuesInRangesSql(selection: ViewSelection, ranges: readonly (readonly [bigint, bigint])[]): string {
  const keys = selection.record.keyColumns!.map((k) => quoteIdent(k.name));
  const columns = [...keys, ...selection.features.map(quoteIdent), 'valid_from'];
  const where = ranges.map(([lo, hi]) => `rowid BETWEEN ${lo} AND ${hi}`).join(' OR ');
  return `SELECT ${columns.join(', ')} FROM ${quoteIdent(rowsTableOf(selection.record.table))} WHERE ${where}`;
}
