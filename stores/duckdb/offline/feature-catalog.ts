import {
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  INTEGER,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBConnection,
} from '@duckdb/node-api';
import type { ViewDescriptor } from '../../../framework/features/fingerprint.js';
import type { FeatureViewStatus } from '../../../framework/interfaces/offline-store.js';
import { formatPosition } from '../../../framework/types.js';
import { quoteIdent, quoteLiteral } from '../duckdb-database.js';
import type { KeyColumn } from './feature-columns.js';
import type { DeadLetter } from '../../../framework/features/materialize.js';
import { checkLayout, newestRow, rowsTableOf } from './feature-layout.js';
import { updateOrInsert } from '../update-or-insert.js';

/**
 * `_feature_views` records every view version that has a history table (its fingerprint and
 * definition, so a changed definition is caught and old versions stay readable without their code);
 * `_feature_dead_letters` keeps the rows views rejected, with the error; `_feature_timings` how long
 * each view's transform took per row in the last ingesting process (for `featureflow status`, which
 * runs in another process).
 */
export const FEATURE_CATALOG_DDL = `
CREATE TABLE IF NOT EXISTS _feature_views (
  name VARCHAR NOT NULL,
  version INTEGER NOT NULL,
  fingerprint VARCHAR NOT NULL,
  definition VARCHAR NOT NULL,
  table_name VARCHAR NOT NULL,
  source_table VARCHAR NOT NULL,
  key_columns VARCHAR,
  active BOOLEAN NOT NULL,
  watermark UBIGINT,
  rebuilt_changes BIGINT,
  created_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS _feature_dead_letters (
  view VARCHAR NOT NULL,
  version INTEGER NOT NULL,
  source_table VARCHAR NOT NULL,
  op VARCHAR NOT NULL,
  lsn UBIGINT NOT NULL,
  commit_time TIMESTAMPTZ NOT NULL,
  key VARCHAR,
  row VARCHAR,
  error VARCHAR NOT NULL,
  recorded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS _feature_timings (
  name VARCHAR NOT NULL,
  version INTEGER NOT NULL,
  rows BIGINT NOT NULL,
  ms DOUBLE NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (name, version)
);
`;

/** A row of `_feature_views`. */
export interface ViewRecord {
  readonly name: string;
  readonly version: number;
  readonly fingerprint: string;
  readonly definition: ViewDescriptor;
  readonly table: string;
  readonly source: string;
  /** Entity key columns with their SQL types; null until the source schema was seen and the table made. */
  readonly keyColumns: readonly KeyColumn[] | null;
  /** Kept current by ingest (its definition is configured). */
  readonly active: boolean;
  /**
   * LSN through which the table is current: the change log's checkpoint for an active version (it
   * moves in the same transaction), the checkpoint when it was retired otherwise; null before the first batch.
   */
  readonly watermark: bigint | null;
}

/** True when the catalog tables exist (a store that never had feature views has none). */
export async function hasFeatureCatalog(c: DuckDBConnection): Promise<boolean> {
  const rows = (
    await c.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = '_feature_views' AND NOT temporary`)
  ).getRows();
  return Number(rows[0]![0]) > 0;
}

export async function readViewRecords(c: DuckDBConnection): Promise<ViewRecord[]> {
  if (!(await hasFeatureCatalog(c))) return [];
  const rows = (
    await c.runAndReadAll(
      `SELECT name, version, fingerprint, definition, table_name, source_table, key_columns, active,
              CASE WHEN active THEN (SELECT lsn FROM _checkpoint WHERE id = 1) ELSE watermark END
         FROM _feature_views ORDER BY name, version`,
    )
  ).getRows() as [string, number, string, string, string, string, string | null, boolean, bigint | null][];
  return rows.map(([name, version, fp, definition, table, source, keys, active, watermark]) => ({
    name,
    version,
    fingerprint: fp,
    definition: JSON.parse(definition) as ViewDescriptor,
    table,
    source,
    keyColumns: keys === null ? null : (JSON.parse(keys) as KeyColumn[]),
    active,
    watermark: watermark === null ? null : BigInt(watermark),
  }));
}

export async function insertViewRecord(
  c: DuckDBConnection,
  record: Omit<ViewRecord, 'watermark' | 'keyColumns'>,
): Promise<void> {
  await c.run('INSERT INTO _feature_views VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL, NULL, now())', [
    record.name,
    record.version,
    record.fingerprint,
    JSON.stringify(record.definition),
    record.table,
    record.source,
    record.active,
  ]);
}

/** Records that the table exists, with its key columns and how many logged changes built it. */
export async function recordTableBuilt(
  c: DuckDBConnection,
  name: string,
  version: number,
  keys: readonly KeyColumn[],
  rebuilt: number,
): Promise<void> {
  await c.run('UPDATE _feature_views SET key_columns = $1, rebuilt_changes = $2 WHERE name = $3 AND version = $4', [
    JSON.stringify(keys),
    rebuilt,
    name,
    version,
  ]);
}

/**
 * Marks which versions are kept current: those configured now. A version that stops being current
 * keeps the checkpoint it was current through as its watermark.
 */
export async function setActive(
  c: DuckDBConnection,
  active: readonly { name: string; version: number }[],
): Promise<void> {
  const configured =
    active.length === 0
      ? 'false'
      : `(name, version) IN (${active.map((v) => `(${quoteLiteral(v.name)}, ${v.version})`).join(', ')})`;
  await c.run(
    `UPDATE _feature_views SET active = ${configured},
            watermark = CASE WHEN ${configured} THEN NULL ELSE (SELECT lsn FROM _checkpoint WHERE id = 1) END
      WHERE active <> ${configured}`,
  );
}

const DEAD_LETTER_TYPES = [
  VARCHAR,
  INTEGER,
  VARCHAR,
  VARCHAR,
  UBIGINT,
  TIMESTAMPTZ,
  VARCHAR,
  VARCHAR,
  VARCHAR,
  TIMESTAMPTZ,
];

export async function writeDeadLetters(c: DuckDBConnection, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  const appender = await c.createAppender('_feature_dead_letters');
  const now = new DuckDBTimestampTZValue(BigInt(Date.now()) * 1000n);
  for (let s = 0; s < letters.length; s += 2048) {
    const part = letters.slice(s, s + 2048);
    const chunk = DuckDBDataChunk.create(DEAD_LETTER_TYPES, part.length);
    chunk.setColumns([
      part.map((d) => d.view),
      part.map((d) => d.version),
      part.map((d) => d.table),
      part.map((d) => d.op),
      part.map((d) => d.position),
      part.map((d) => new DuckDBTimestampTZValue(d.commitTime)),
      part.map((d) => d.key),
      part.map((d) => d.row),
      part.map((d) => d.error),
      part.map(() => now),
    ]);
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
}

/** Records the rows each view version transformed and the time it took (replacing an earlier process's figures). */
export async function writeTimings(
  c: DuckDBConnection,
  timings: readonly { name: string; version: number; rows: number; ms: number }[],
): Promise<void> {
  for (const t of timings) {
    await updateOrInsert(
      c,
      'UPDATE _feature_timings SET rows = $3, ms = $4, updated_at = now() WHERE name = $1 AND version = $2',
      'INSERT INTO _feature_timings VALUES ($1, $2, $3, $4, now())',
      [t.name, t.version, t.rows, t.ms],
    );
  }
}

/** Per `name@version`: microseconds per transformed row (a store written before timings were kept has none). */
async function readTimings(c: DuckDBConnection): Promise<Map<string, { rows: number; micros: number | null }>> {
  const out = new Map<string, { rows: number; micros: number | null }>();
  const exists = (
    await c.runAndReadAll(
      `SELECT count(*) FROM duckdb_tables() WHERE table_name = '_feature_timings' AND NOT temporary`,
    )
  ).getRows();
  if (Number(exists[0]![0]) === 0) return out;
  const rows = (await c.runAndReadAll('SELECT name, version, rows, ms FROM _feature_timings')).getRows() as [
    string,
    number,
    bigint,
    number,
  ][];
  for (const [name, version, n, ms] of rows)
    out.set(`${name}@${version}`, { rows: Number(n), micros: Number(n) > 0 ? (ms * 1000) / Number(n) : null });
  return out;
}

/** What `featureflow status` shows about feature views. */
export async function featureStatus(c: DuckDBConnection): Promise<FeatureViewStatus[]> {
  const records = await readViewRecords(c);
  const out: FeatureViewStatus[] = [];
  const dead = new Map<string, number>();
  const timings = records.length > 0 ? await readTimings(c) : new Map();
  if (records.length > 0) {
    const rows = (
      await c.runAndReadAll('SELECT view, version, count(*) FROM _feature_dead_letters GROUP BY ALL')
    ).getRows() as [string, number, bigint][];
    for (const [view, version, n] of rows) dead.set(`${view}@${version}`, Number(n));
  }
  for (const r of records) {
    let rows = 0;
    let entities = 0;
    if (r.keyColumns !== null) {
      await checkLayout(c, r.name, r.version, r.table);
      // Rows of the base table; entities whose newest row is not a deletion.
      const keys = r.keyColumns.map((k) => quoteIdent(k.name));
      const base = quoteIdent(rowsTableOf(r.table));
      const counts = (
        await c.runAndReadAll(
          `SELECT (SELECT count(*) FROM ${base}), (SELECT count(*) FROM (SELECT deleted FROM ${base} QUALIFY ${newestRow(keys)}) WHERE NOT deleted)`,
        )
      ).getRows()[0] as [bigint, bigint];
      rows = Number(counts[0]);
      entities = Number(counts[1]);
    }
    out.push({
      view: r.name,
      version: r.version,
      table: r.table,
      active: r.active,
      rows,
      entities,
      deadLetters: dead.get(`${r.name}@${r.version}`) ?? 0,
      watermark: r.watermark === null ? null : formatPosition(r.watermark),
      transformedRows: timings.get(`${r.name}@${r.version}`)?.rows ?? 0,
      transformMicrosPerRow: timings.get(`${r.name}@${r.version}`)?.micros ?? null,
    });
  }
  return out;
}
