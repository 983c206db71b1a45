import { randomBytes } from 'node:crypto';
import duckdb from '@duckdb/node-bindings';
import { DuckDBTypeId, type DuckDBArrayType, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import type * as arrow from 'apache-arrow';
import type { FeatureRow } from '../../../framework/features/feature-rows.js';
import type { StoredFeatureValue } from '../../../framework/features/feature-values.js';
import type { FeatureRowScan } from '../../../framework/interfaces/offline-store.js';
import type { Op, Value } from '../../../framework/types.js';
import { quoteIdent } from '../duckdb-database.js';
import { converterFor } from './duckdb-arrow.js';
import { readViewRecords } from './feature-catalog.js';
import { rowsTableOf } from './feature-layout.js';
import type { ViewSelection } from './feature-query.js';

/** Feature rows per yielded batch unless asked otherwise. */
export const DEFAULT_SCAN_BATCH = 10_000;

/**
 * Rows of the history table per page of a scan of the current rows: DuckDB's row group, the unit its
 * zone maps skip by (a page streams chunk by chunk, so its size costs no memory).
 */
const PAGE_ROWS = 122_880;

/** How a scan gets its connection: its own (a transaction of its own), or a shared one it must not wrap in a transaction. */
export interface ScanConnection {
  readonly connection: DuckDBConnection;
  /** True when the connection is the scan's own: it reads in a transaction and closes it after. */
  readonly own: boolean;
}

/** One query of a scan, and how many rows it must return. */
interface Page {
  readonly sql: string;
  readonly rows: number;
}

/** Selects a scan's rows into the temp table `keys` (in the scan's transaction) and returns its pages. */
type Plan = (c: DuckDBConnection, keys: string) => Promise<Page[]>;

/**
 * Each entity's newest history row unless it records a deletion, as feature rows, with the view's
 * watermark read in the same transaction (so the rows reflect exactly that position); in seq order
 * by pages, in no set order within one.
 */
export function scanLatest(
  open: () => Promise<ScanConnection>,
  selection: ViewSelection,
  batchSize = DEFAULT_SCAN_BATCH,
): Promise<FeatureRowScan> {
  const base = quoteIdent(rowsTableOf(selection.record.table));
  const entity = selection.record.keyColumns!.map((k) => quoteIdent(k.name)).join(', ');
  const columns = selectColumns(selection);
  return scan(open, selection, batchSize, async (c, keys) => {
    // The newest row per entity as feature-layout.ts's newestRow orders them (valid_from, then seq;
    // (valid_from, seq) is unique, so the struct's max names one row and its deletion flag). An
    // aggregate over keys and seq only: a window over every column would hold the table in DuckDB.
    await c.run(
      `CREATE TEMP TABLE ${keys} AS SELECT m.s AS seq FROM (SELECT max({'v': valid_from, 's': seq, 'd': deleted}) AS m FROM ${base} GROUP BY ${entity}) WHERE NOT m.d`,
    );
    // Pages are ranges of seq: the rows of a range lie together in the table (appended in seq order).
    const counts = (
      await c.runAndReadAll(`SELECT seq // ${PAGE_ROWS} AS p, count(*) FROM ${keys} GROUP BY p ORDER BY p`)
    ).getRows() as [bigint, bigint][];
    return counts.map(([p, rows]) => {
      const range = `seq >= ${BigInt(p) * BigInt(PAGE_ROWS)} AND seq < ${(BigInt(p) + 1n) * BigInt(PAGE_ROWS)}`;
      return {
        sql: `SELECT ${columns} FROM ${base} r WHERE r.${range} AND r.seq IN (SELECT seq FROM ${keys} WHERE ${range})`,
        rows: Number(rows),
      };
    });
  });
}

/** Keys, features, then valid_from, lsn, op, deleted of the history table `r`: the layout {@link RowReader} reads. */
function selectColumns(selection: ViewSelection): string {
  const keys = selection.record.keyColumns!.map((k) => quoteIdent(k.name));
  return [...keys, ...selection.features.map(quoteIdent), 'valid_from', 'lsn', 'op', 'deleted']
    .map((c) => `r.${c}`)
    .join(', ');
}

/**
 * Runs a scan: the watermark and the plan's pages in one transaction, each page streamed and its
 * rows converted into batches of `batchSize` feature rows.
 *
 * A DuckDB streaming result that fails midway (out of memory, under the ingesting process's 64 MB)
 * ends as if it were complete, and the node API has no way to tell: one streamed query could lose
 * rows without a word. So the plan selects the rows into a temp table first (a materialized
 * statement: its errors are raised; DuckDB spills the table under pressure) and knows how many rows
 * each page must return; a page that returns fewer fails the scan. Chunks are converted and dropped
 * as they come: DuckDB frees a chunk only when V8 collects its wrapper, which it does soon for
 * short-lived ones (a materialized page would hold all its rows until a full collection).
 */
async function scan(
  open: () => Promise<ScanConnection>,
  selection: ViewSelection,
  batchSize: number,
  plan: Plan,
): Promise<FeatureRowScan> {
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new RangeError(`batchSize must be a positive whole number, got ${batchSize}`);
  const { connection: c, own } = await open();
  const keys = `temp.main.${quoteIdent(`_ff_scan_${randomBytes(6).toString('hex')}`)}`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (own) {
      // The temp table goes with the transaction.
      await c.run('ROLLBACK').catch(() => undefined);
      c.closeSync();
    } else await c.run(`DROP TABLE IF EXISTS ${keys}`).catch(() => undefined);
  };
  try {
    // One snapshot for the watermark and every page: DuckDB's transactions are snapshot isolated, so
    // batches the change log commits meanwhile are invisible here.
    if (own) await c.run('BEGIN TRANSACTION');
    const record = (await readViewRecords(c)).find(
      (r) => r.name === selection.record.name && r.version === selection.record.version,
    );
    const pages = await plan(c, keys);
    const watermark = record?.watermark ?? null;
    // Every row scanned committed at or before the watermark: loaded rows take it as their commit
    // position, so any change streamed after the scan comes later in commit order.
    const reader = new RowReader(selection, watermark ?? 0n);
    let started = false;
    async function* rows(): AsyncGenerator<readonly FeatureRow[]> {
      if (started) throw new Error('a feature row scan can be iterated once');
      started = true;
      try {
        let batch: FeatureRow[] = [];
        for (const page of pages) {
          if (closed) return;
          const result = await c.stream(page.sql);
          const types = result.columnTypes();
          let read = 0;
          for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
            read += chunk.rowCount;
            for (const row of reader.read(chunk.chunk, chunk.rowCount, types)) {
              batch.push(row);
              if (batch.length === batchSize) {
                yield batch;
                batch = [];
              }
            }
          }
          if (read !== page.rows) {
            throw new Error(
              `reading ${selection.record.table} ended after ${read} of the ${page.rows} rows of a page: DuckDB failed midway, ` +
                'most likely out of memory; raise duckdb({ memoryLimit })',
            );
          }
        }
        if (batch.length > 0 && !closed) yield batch;
      } finally {
        await close();
      }
    }
    return { watermark, rows: rows(), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Reads one column of a chunk: the value at a row, or null. */
type ColumnRead = (row: number) => unknown;

/**
 * Turns DuckDB chunks of the scan's columns into feature rows: column-wise through the Arrow
 * converters (fixed-width buffers copied once per chunk), then one object per row. Tensors get a
 * typed array of their own (a copy), so a row kept by the caller does not hold its whole chunk.
 */
class RowReader {
  private readonly keyCount: number;
  private readonly featureCount: number;
  private converters: readonly ReturnType<typeof converterFor>[] = [];
  /** Position of the last truncate handed out (its other entities' rows are folded into it). */
  private truncated: bigint | null = null;

  constructor(
    selection: ViewSelection,
    private readonly commitPosition: bigint,
  ) {
    this.keyCount = selection.record.keyColumns!.length;
    this.featureCount = selection.features.length;
  }

  /** The feature rows of one chunk of the page query's columns (`types`). */
  read(chunk: duckdb.DataChunk, length: number, types: readonly DuckDBType[]): FeatureRow[] {
    if (this.converters.length !== types.length) this.converters = types.map(converterFor);
    const reads = types.map((type, i) =>
      columnRead(this.converters[i]!.convert(duckdb.data_chunk_get_vector(chunk, i), length), type),
    );
    const k = this.keyCount;
    const f = this.featureCount;
    const [validFrom, lsn, op, deleted] = reads.slice(k + f) as [ColumnRead, ColumnRead, ColumnRead, ColumnRead];
    const out: FeatureRow[] = [];
    for (let i = 0; i < length; i++) {
      const rowOp = op(i) as Op;
      const position = lsn(i) as bigint;
      const commitTime = validFrom(i) as bigint;
      if (rowOp === 't') {
        // The history keeps a truncate as a deletion of each entity; the live path hands it out as one row.
        if (this.truncated === position) continue;
        this.truncated = position;
        out.push({ op: rowOp, key: [], values: null, position, commitPosition: this.commitPosition, commitTime });
        continue;
      }
      const key = new Array<Value>(k);
      for (let j = 0; j < k; j++) key[j] = reads[j]!(i) as Value;
      let values: StoredFeatureValue[] | null = null;
      if (!(deleted(i) as boolean)) {
        values = new Array<StoredFeatureValue>(f);
        for (let j = 0; j < f; j++) values[j] = reads[k + j]!(i) as StoredFeatureValue;
      }
      out.push({ op: rowOp, key, values, position, commitPosition: this.commitPosition, commitTime });
    }
    return out;
  }
}

const utf8 = new TextDecoder();

/** A reader of one converted column, in the stored form of feature values and keys. */
function columnRead(data: arrow.Data, type: DuckDBType): ColumnRead {
  const bitmap = data.nullCount > 0 ? data.nullBitmap : undefined;
  const valid = bitmap ? (i: number) => (bitmap[i >> 3]! & (1 << (i & 7))) !== 0 : () => true;
  switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN: {
      const bits = data.values as Uint8Array;
      return (i) => (valid(i) ? (bits[i >> 3]! & (1 << (i & 7))) !== 0 : null);
    }
    case DuckDBTypeId.VARCHAR: {
      const offsets = data.valueOffsets as Int32Array;
      const bytes = data.values as Uint8Array;
      return (i) => (valid(i) ? utf8.decode(bytes.subarray(offsets[i]!, offsets[i + 1]!)) : null);
    }
    case DuckDBTypeId.ARRAY: {
      const size = (type as DuckDBArrayType).length;
      const elements = data.children[0]!.values as Float32Array | Float64Array | Int32Array;
      return (i) => (valid(i) ? elements.slice(i * size, (i + 1) * size) : null);
    }
    default: {
      // Fixed width: integers, floats, BIGINT / UBIGINT (bigint), TIMESTAMPTZ (µs as bigint).
      const values = data.values as ArrayLike<number | bigint>;
      return (i) => (valid(i) ? values[i]! : null);
    }
  }
}
