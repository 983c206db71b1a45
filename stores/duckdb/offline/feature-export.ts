import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { tableToIPC } from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';
import { formatMicros } from '../../../framework/features/instant.js';
import type { ExportManifest, ExportOptions, ExportResult } from '../../../framework/interfaces/offline-store.js';
import { formatPosition } from '../../../framework/types.js';
import { queryArrow } from './duckdb-arrow.js';
import type { FeatureQuery } from './feature-query.js';

function formatOf(out: string, format?: 'parquet' | 'arrow'): 'parquet' | 'arrow' {
  if (format) return format;
  const ext = extname(out).toLowerCase();
  if (ext === '.parquet') return 'parquet';
  if (ext === '.arrow' || ext === '.feather' || ext === '.ipc') return 'arrow';
  throw new FeatureflowError('FF_EXPORT', `cannot tell the format of ${out}; name it .parquet or .arrow`);
}

/** Writes a query's result as Parquet (DuckDB COPY) or an Arrow IPC file, then its manifest. */
export async function writeExport(
  c: DuckDBConnection,
  query: FeatureQuery,
  out: string,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const format = formatOf(out, options.format);
  const path = resolve(out);
  mkdirSync(dirname(path), { recursive: true });
  const total = query.spine?.rows ?? null;
  let rows: number;
  if (format === 'parquet') {
    rows = await copyToParquet(c, query.sql, path, (percent) =>
      options.onProgress?.({ rows: null, total, percent: percent >= 0 ? percent : null, done: false }),
    );
  } else {
    const onRows = (n: number) =>
      options.onProgress?.({ rows: n, total, percent: total ? Math.min(100, (100 * n) / total) : null, done: false });
    const table = await queryArrow(c, query.sql, [], { fieldMetadata: query.fieldMetadata, onRows });
    rows = table.numRows;
    writeFileSync(path, tableToIPC(table, 'file'));
  }
  options.onProgress?.({ rows, total: rows, percent: 100, done: true });
  const watermarks = query.views.map((v) => v.record.watermark);
  const known = watermarks.filter((w): w is bigint => w !== null);
  const manifest: ExportManifest = {
    featureflow: { manifestVersion: 1 },
    kind: query.kind,
    createdAt: new Date().toISOString(),
    file: basename(path),
    format,
    rows,
    ...(query.asOf === undefined ? {} : { asOf: formatMicros(query.asOf) }),
    ...(query.spine ? { spine: query.spine } : {}),
    views: query.views.map((v) => ({
      name: v.record.name,
      version: v.record.version,
      table: v.record.table,
      fingerprint: v.record.fingerprint,
      features: v.features,
      ttlMicros: query.ttl?.[`${v.record.name}@${v.record.version}`] ?? v.record.definition.ttl,
      watermarkLsn: v.record.watermark === null ? null : formatPosition(v.record.watermark),
    })),
    lsnWatermark:
      known.length === watermarks.length && known.length > 0
        ? formatPosition(known.reduce((a, b) => (a < b ? a : b)))
        : null,
    rule: query.rule,
  };
  const manifestPath = `${path}.manifest.json`;
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return { path, manifestPath, rows, manifest };
}

/**
 * `COPY (query) TO file (FORMAT parquet)`, run task by task so a progress callback can follow
 * DuckDB's query progress; returns the rows written.
 */
async function copyToParquet(
  c: DuckDBConnection,
  sql: string,
  path: string,
  onProgress: (percent: number) => void,
): Promise<number> {
  const pending = await c.start(`COPY (${sql}) TO '${path.replaceAll("'", "''")}' (FORMAT parquet)`);
  let tasks = 0;
  // runTask() returns RESULT_READY (0) once the result can be fetched.
  while (pending.runTask() !== 0) {
    if (++tasks % 256 === 0) {
      onProgress(c.progress.percentage);
      await new Promise((r) => setImmediate(r));
    }
  }
  const result = await pending.getResult();
  const rows = await result.getRows();
  return Number(rows[0]?.[0] ?? 0);
}
