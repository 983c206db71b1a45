import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { FeatureflowError } from '../../../framework/errors.js';
import { formatMicros } from '../../../framework/features/instant.js';
import type {
  ExportManifest,
  ExportOptions,
  ExportResult,
  TensorColumn,
} from '../../../framework/interfaces/offline-store.js';
import { formatPosition } from '../../../framework/types.js';
import { IpcEncoder, streamArrow } from './duckdb-arrow.js';
import { quoteLiteral } from '../duckdb-database.js';
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
  // Written beside the file and renamed at the end: an export that fails midway (streamed, it can)
  // leaves no truncated file behind, nor a previous export half overwritten.
  const partial = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.partial`);
  const tensors = tensorColumns(query);
  let rows: number;
  try {
    if (format === 'parquet') {
      const onProgress = options.onProgress;
      rows = await copyToParquet(
        c,
        query.sql,
        rowGroupRows(query.fieldMetadata),
        partial,
        tensors,
        onProgress &&
          ((percent) => onProgress({ rows: null, total, percent: percent >= 0 ? percent : null, done: false })),
      );
    } else {
      const onRows = (n: number) =>
        options.onProgress?.({ rows: n, total, percent: total ? Math.min(100, (100 * n) / total) : null, done: false });
      rows = await writeArrowFile(c, query, partial, onRows);
    }
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
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
    tensors,
  };
  const manifestPath = `${path}.manifest.json`;
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return { path, manifestPath, rows, manifest };
}

/** Rows the query returns: a training set has one per spine row; else DuckDB counts them (in the same transaction). */
export async function expectedRows(c: DuckDBConnection, query: FeatureQuery): Promise<number> {
  if (query.spine) return query.spine.rows;
  return Number((await c.runAndReadAll(`SELECT count(*) FROM (${query.sql})`)).getRows()[0]![0]);
}

/**
 * Streams the query's result into an Arrow IPC file, record batch by record batch as DuckDB makes
 * them (the file's memory is one batch, not the table); returns the rows written. A result that ends
 * short (DuckDB out of memory midway) fails the export rather than writing a shorter file.
 */
async function writeArrowFile(
  c: DuckDBConnection,
  query: FeatureQuery,
  path: string,
  onRows: (rows: number) => void,
): Promise<number> {
  const expected = await expectedRows(c, query);
  const { schema, batches } = await streamArrow(c, query.sql, [], {
    fieldMetadata: query.fieldMetadata,
    onRows,
    expectedRows: expected,
  });
  const file = await open(path, 'w');
  try {
    const encoder = new IpcEncoder('file', schema);
    await file.writev(encoder.start());
    for await (const batch of batches) await file.writev(encoder.write(batch));
    await file.writev(encoder.finish());
  } finally {
    await file.close();
  }
  return expected;
}

/** The tensor columns of a query's result (from its Arrow field metadata), for the manifest and Parquet. */
function tensorColumns(query: FeatureQuery): Record<string, TensorColumn> {
  const out: Record<string, TensorColumn> = {};
  for (const [column, m] of query.fieldMetadata) {
    const shape = m.get('featureflow.shape');
    const dtype = m.get('featureflow.dtype');
    if (shape !== undefined && dtype !== undefined) out[column] = { dtype, shape: JSON.parse(shape) as number[] };
  }
  return out;
}

/** The Parquet key-value metadata key holding the tensor columns' shapes (as the manifest's `tensors`). */
export const PARQUET_TENSORS_KEY = 'featureflow.tensors';

/**
 * `COPY (query) TO file (FORMAT parquet)` (a materialized statement: a failure midway is raised);
 * returns the rows written. It runs on a worker thread of libuv, not on the event loop (a process
 * that ingests meanwhile, and answers reads of others, keeps going); `onProgress` polls DuckDB's
 * query progress meanwhile. DuckDB writes a fixed-size ARRAY as a Parquet LIST, which has no size:
 * the tensor columns' shapes go into the file's key-value metadata.
 */
async function copyToParquet(
  c: DuckDBConnection,
  sql: string,
  rowGroupSize: number,
  path: string,
  tensors: Readonly<Record<string, TensorColumn>>,
  onProgress?: (percent: number) => void,
): Promise<number> {
  const metadata =
    Object.keys(tensors).length === 0
      ? ''
      : `, KV_METADATA {${quoteLiteral(PARQUET_TENSORS_KEY)}: ${quoteLiteral(JSON.stringify(tensors))}}`;
  const timer = onProgress && setInterval(() => onProgress(c.progress.percentage), PROGRESS_MS);
  try {
    const result = await c.runAndReadAll(
      `COPY (${sql}) TO ${quoteLiteral(path)} (FORMAT parquet, ROW_GROUP_SIZE ${rowGroupSize}${metadata})`,
    );
    return Number(result.getRows()[0]?.[0] ?? 0);
  } finally {
    clearInterval(timer);
  }
}

/**
 * Rows per Parquet row group: DuckDB's writer holds a row group per thread before writing it, and its
 * default of 122,880 rows of 784-float tensors is 385 MB. Tensor columns make the groups smaller,
 * about {@link ROW_GROUP_BYTES} each (at least 2048 rows): the latest values of 100k digit images
 * peaked at 1.43 GB of RSS with the default groups, 0.81 GB with 16 MB ones (reader limit 512 MB);
 * a streamed export's 128 MB (see DuckDBOfflineStore.export) ran out with 16 MB groups on two threads.
 */
function rowGroupRows(fieldMetadata: ReadonlyMap<string, ReadonlyMap<string, string>>): number {
  let bytes = 64;
  for (const metadata of fieldMetadata.values()) {
    const shape = metadata.get('featureflow.shape');
    if (!shape) continue;
    const elements = (JSON.parse(shape) as number[]).reduce((a, b) => a * b, 1);
    bytes += elements * (/64$/.test(metadata.get('featureflow.dtype') ?? '') ? 8 : 4);
  }
  return Math.max(2048, Math.min(DUCKDB_ROW_GROUP_ROWS, Math.floor(ROW_GROUP_BYTES / bytes)));
}

/** DuckDB's default rows per Parquet row group. */
const DUCKDB_ROW_GROUP_ROWS = 122_880;
/** Bytes a row group of tensors aims at. */
const ROW_GROUP_BYTES = 4 * 1024 * 1024;

/** Milliseconds between progress reports of a Parquet export. */
const PROGRESS_MS = 250;
