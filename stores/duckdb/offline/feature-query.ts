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
