import { DuckDBDataChunk, DuckDBTimestampTZValue, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { entityId } from '../../../framework/features/entity-key.js';
import type { FeatureRow } from '../../../framework/features/feature-rows.js';
import type { StoredFeatureValue } from '../../../framework/features/feature-values.js';
import type { FeatureView } from '../../../framework/features/feature-view.js';
import type { ColumnSchema, Value } from '../../../framework/types.js';
import { quoteIdent } from '../duckdb-database.js';
import { type ColumnChunk, insertChunks } from '../staged-insert.js';
import { featureCodec, HISTORY_COLUMNS, keyCodec, type ColumnCodec, type KeyColumn } from './feature-columns.js';
import { historyViewSql, newestRow, rowsTableOf } from './feature-layout.js';

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
/** Most feature rows a writer holds before it writes them (without waiting for {@link HistoryWriter.flush}). */
const MAX_PENDING_ROWS = 4 * CHUNK_ROWS;
/**
 * About the most bytes of feature values a writer holds before it writes them: rows of large tensors
 * are written sooner (a 28×28 float32 image is 3 kB: 8192 of them held 25 MB, and a snapshot batch's
 * rows more besides), though never fewer than one chunk, {@link CHUNK_ROWS} rows. 4 MB rather than
 * 8: see the change log's `FLUSH_BYTES` (typed-writer.ts) for what both cost in memory.
 */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** Version rows of one segment, column-wise, before they are written. */
class VersionRows {
  readonly keys: Value[][];
  readonly features: StoredFeatureValue[][];
  readonly validFrom: bigint[] = [];
  readonly position: bigint[] = [];
  readonly op: string[] = [];
  readonly deleted: boolean[] = [];

  constructor(keyCount: number, featureCount: number) {
    this.keys = Array.from({ length: keyCount }, () => []);
    this.features = Array.from({ length: featureCount }, () => []);
  }

  get length(): number {
    return this.validFrom.length;
  }

  /** Writes a version at `index` (appending when index is the length). */
  set(index: number, row: FeatureRow): void {
    for (let k = 0; k < this.keys.length; k++) this.keys[k]![index] = row.key[k]!;
    for (let f = 0; f < this.features.length; f++)
      this.features[f]![index] = row.values === null ? null : row.values[f]!;
    this.validFrom[index] = row.commitTime;
    this.position[index] = row.position;
    this.op[index] = row.op;
    this.deleted[index] = row.values === null;
  }
}

/**
 * Writes the history of one view version: each feature row becomes a version row (or a deletion row),
 * appended through data chunks to the append-only base table (see feature-layout.ts); `valid_to` is
 * derived by the view, so earlier rows are never rewritten and a batch costs O(batch). Within one
 * instant (a transaction's commit time), the last change of an entity wins (the row it supersedes is
 * removed), so no zero-length versions remain and "newest version with valid_from <= t" is
 * unambiguous. The result does not depend on how changes are cut into batches: replaying the change
 * log gives the same rows as the live stream, which also lets a writer hold rows of several batches
 * and write them at once ({@link flush}, before the transaction commits): each write has a fixed
 * cost (an insert planned and run, see staged-insert.ts).
 */
export class HistoryWriter {
  readonly table: string;
  readonly keyColumns: readonly KeyColumn[];
  private readonly keyCodecs: ColumnCodec[];
  private readonly featureCodecs: ColumnCodec[];
  /** The base table's column types, in order. */
  private readonly types: DuckDBType[];
  /** The data chunk each appended segment fills (see appendChunks). */
  private chunk: DuckDBDataChunk | undefined;
  /** Every table key column is an entity key: snapshot reads then never meet an earlier row of their entity. */
  private readonly uniqueReads: boolean;
  /** The base table (`<table>__rows`). */
  readonly rowsTable: string;
  /** The table is known to be empty (nothing to supersede). */
  private empty = false;
  /** The next `seq` (above every row's; it never goes back, also across clear() and rollbacks). */
  private nextSeq = 0n;
  /** Newest valid_from possibly in the table (an over-estimate is safe: it only costs a cleanup pass). */
  private maxValidFrom: bigint | null = null;
  /** Feature rows written but not yet in the table, in order (no truncate among them). */
  private pending: FeatureRow[] = [];
  /** Rows held before they are written (see {@link MAX_PENDING_BYTES}). */
  private readonly maxPending: number;

  /**
   * `keys` are the source columns of the entity's keys (their types give the key columns' types);
   * `uniqueReads` is true when every key column of the source table is an entity key.
   */
  constructor(
    readonly view: FeatureView,
    keys: readonly ColumnSchema[],
    uniqueReads: boolean,
  ) {
    this.table = view.table;
    this.rowsTable = rowsTableOf(view.table);
    this.keyCodecs = keys.map((k) => keyCodec(k));
    this.keyColumns = view.entity.keys.map((k, i) => ({ name: k, sql: this.keyCodecs[i]!.sql }));
    this.featureCodecs = Object.values(view.features).map(featureCodec);
    this.types = [
      ...this.keyCodecs.map((c) => c.duck),
      ...this.featureCodecs.map((c) => c.duck),
      ...HISTORY_COLUMNS.map((c) => c.duck),
    ];
    this.uniqueReads = uniqueReads;
    let rowBytes = 64;
    for (const type of Object.values(view.features))
      rowBytes += type.kind === 'tensor' ? type.size * (type.dtype === 'float64' ? 8 : 4) : 16;
    this.maxPending = Math.max(CHUNK_ROWS, Math.min(MAX_PENDING_ROWS, Math.floor(MAX_PENDING_BYTES / rowBytes)));
  }

  /** Creates the base table and the history view over it. */
  async create(c: DuckDBConnection): Promise<void> {
    const columns = [
      ...this.keyColumns.map((k) => `${quoteIdent(k.name)} ${k.sql} NOT NULL`),
      ...Object.keys(this.view.features).map((f, i) => `${quoteIdent(f)} ${this.featureCodecs[i]!.sql}`),
      ...HISTORY_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.sql}`),
    ];
    await c.run(`CREATE TABLE IF NOT EXISTS ${quoteIdent(this.rowsTable)} (${columns.join(', ')})`);
    await c.run(historyViewSql(this.table, this.view.entity.keys, Object.keys(this.view.features)));
  }

  /** Reads what the writer needs to know about the table's contents; after it exists. */
  async load(c: DuckDBConnection): Promise<void> {
    const rows = (
      await c.runAndReadAll(`SELECT epoch_us(max(valid_from)), max(seq) FROM ${quoteIdent(this.rowsTable)}`)
    ).getRows();
    const max = rows[0]?.[0] as bigint | null;
    const seq = rows[0]?.[1] as bigint | null;
    this.maxValidFrom = max === null || max === undefined ? null : BigInt(max);
    this.empty = this.maxValidFrom === null;
    if (seq !== null && seq !== undefined && BigInt(seq) >= this.nextSeq) this.nextSeq = BigInt(seq) + 1n;
  }

  /** Forgets every row (the change log restarted from a new snapshot). */
  async clear(c: DuckDBConnection): Promise<void> {
    this.pending = [];
    await c.run(`DELETE FROM ${quoteIdent(this.rowsTable)}`);
    this.empty = true;
    this.maxValidFrom = null;
  }

  /**
   * Writes the view's feature rows, in order (a truncate ends every entity), into the open
   * transaction; some may wait for {@link flush}.
   */
  async write(c: DuckDBConnection, rows: readonly FeatureRow[]): Promise<void> {
    for (const row of rows) {
      if (row.op === 't') {
        await this.flush(c);
        await this.truncate(c, row);
        continue;
      }
      this.pending.push(row);
    }
    if (this.pending.length >= this.maxPending) await this.flush(c);
  }

  /**
   * Writes the rows that wait into the open transaction; before it commits. A small write leaves
   * the calling thread free while DuckDB inserts it unless `keepThreadFree` is false (see `insertChunks`).
   */
  async flush(c: DuckDBConnection, keepThreadFree = true): Promise<void> {
    const rows = this.pending;
    if (rows.length === 0) return;
    this.pending = [];
    await this.writeSegment(c, rows, 0, rows.length, keepThreadFree);
  }

  /** Forgets the rows that wait (the transaction rolled back). */
  discard(): void {
    this.pending = [];
  }

  private async writeSegment(
    c: DuckDBConnection,
    input: readonly FeatureRow[],
    from: number,
    to: number,
    keepThreadFree = true,
  ): Promise<void> {
    if (from >= to) return;
    const rows = new VersionRows(this.keyCodecs.length, this.featureCodecs.length);
    const latest = new Map<string, number>();
    const firstRows: number[] = [];
    let onlyReads = true;
    for (let n = from; n < to; n++) {
      const row = input[n]!;
      if (row.op !== 'r') onlyReads = false;
      // Within one instant the entity's last row wins.
      const id = entityId(row.key);
      const i = latest.get(id);
      if (i !== undefined && rows.validFrom[i] === row.commitTime) {
        rows.set(i, row);
        continue;
      }
      if (i === undefined) firstRows.push(rows.length);
      latest.set(id, rows.length);
      rows.set(rows.length, row);
    }
    if (rows.length === 0) return;

    // Rows of this segment may supersede rows of the table at the same instant (a transaction cut
    // by a batch boundary, transactions sharing a commit time). Snapshot reads of unique keys cannot.
    const first = this.nextSeq;
    await this.append(c, rows, keepThreadFree);
    if (!this.empty && !(onlyReads && this.uniqueReads)) await this.removeSuperseded(c, first, rows, firstRows);
    this.empty = false;
    for (const vf of rows.validFrom) if (this.maxValidFrom === null || vf > this.maxValidFrom) this.maxValidFrom = vf;
  }

  /**
   * Removes the earlier rows (seq < `first`) that a new row (seq >= `first`) of the same entity and
   * the same valid_from supersedes. Only needed when a new entity's first row is no newer than the
   * newest valid_from of the table; both scans are bounded by valid_from and seq, which row-group
   * statistics (zone maps) skip on, so this reads about the batch, not the table.
   */
  private async removeSuperseded(
    c: DuckDBConnection,
    first: bigint,
    rows: VersionRows,
    firstRows: readonly number[],
  ): Promise<void> {
    let minFirst: bigint | null = null;
    for (const i of firstRows) if (minFirst === null || rows.validFrom[i]! < minFirst) minFirst = rows.validFrom[i]!;
    if (this.maxValidFrom === null || minFirst === null || minFirst > this.maxValidFrom) return;
    const t = quoteIdent(this.rowsTable);
    const keys = this.keyColumns.map((k) => quoteIdent(k.name));
    const match = keys.map((k) => `${t}.${k} = n.${k}`).join(' AND ');
    const from = new DuckDBTimestampTZValue(minFirst);
    const to = new DuckDBTimestampTZValue(this.maxValidFrom);
    await c.run(
      `DELETE FROM ${t} USING (SELECT ${keys.join(', ')}, valid_from FROM ${t} WHERE seq >= $1::BIGINT AND valid_from BETWEEN $2 AND $3) n
        WHERE ${match} AND ${t}.valid_from = n.valid_from AND ${t}.seq < $1::BIGINT AND ${t}.valid_from BETWEEN $2 AND $3`,
      [first, from, to],
    );
  }

  private async append(c: DuckDBConnection, rows: VersionRows, keepThreadFree: boolean): Promise<void> {
    const first = this.nextSeq;
    // A stream's commit (a few hundred rows) while serving is staged and leaves the event loop free;
    // more (a snapshot's segment, a large transaction) goes through the appender, which costs less per row.
    await insertChunks(
      c,
      this.rowsTable,
      this.types,
      rows.length,
      this.chunksOf(rows, first),
      () => (this.chunk ??= DuckDBDataChunk.create(this.types)),
      keepThreadFree,
    );
    this.nextSeq = first + BigInt(rows.length);
  }

  /** The rows in data chunks, made as they are read; `seq` numbers them from `first`. */
  private *chunksOf(rows: VersionRows, first: bigint): Generator<ColumnChunk> {
    const [validFrom, position, op, deleted, seq] = HISTORY_COLUMNS;
    for (let s = 0; s < rows.length; s += CHUNK_ROWS) {
      const e = Math.min(s + CHUNK_ROWS, rows.length);
      const seqs = Array.from({ length: e - s }, (_, i) => first + BigInt(s + i));
      yield {
        length: e - s,
        columns: [
          ...this.keyCodecs.map((codec, k) => codec.column(rows.keys[k]!, s, e)),
          ...this.featureCodecs.map((codec, f) => codec.column(rows.features[f]!, s, e)),
          validFrom!.column(rows.validFrom, s, e),
          position!.column(rows.position, s, e),
          op!.column(rows.op, s, e),
          deleted!.column(rows.deleted, s, e),
          seq!.column(seqs, 0, e - s),
        ],
      };
    }
  }

  /**
   * A truncate records a deletion for each entity whose newest row is not one (appended rows; a
   * version of the same instant is superseded by the deletion).
   */
  private async truncate(c: DuckDBConnection, change: FeatureRow): Promise<void> {
    if (this.empty) return;
    const t = quoteIdent(this.rowsTable);
    const keys = this.keyColumns.map((k) => quoteIdent(k.name));
    const list = keys.join(', ');
    const temp = quoteIdent(`_ff_truncated_${this.table}`);
    const at = new DuckDBTimestampTZValue(change.commitTime);
    await c.run(
      `CREATE OR REPLACE TEMP TABLE ${temp} AS
         SELECT ${list}, row_number() OVER () - 1 AS n, valid_from FROM (SELECT ${list}, valid_from, deleted FROM ${t} QUALIFY ${newestRow(keys)})
          WHERE NOT deleted`,
    );
    const live = Number((await c.runAndReadAll(`SELECT count(*) FROM ${temp}`)).getRows()[0]![0]);
    if (live > 0) {
      const match = keys.map((k) => `${t}.${k} = l.${k}`).join(' AND ');
      await c.run(`DELETE FROM ${t} USING ${temp} l WHERE ${match} AND l.valid_from = $1 AND ${t}.valid_from = $1`, [
        at,
      ]);
      await c.run(
        `INSERT INTO ${t} (${list}, valid_from, lsn, op, deleted, seq) SELECT ${list}, $1, $2, 't', true, $3::BIGINT + n FROM ${temp}`,
        [at, change.position, this.nextSeq],
      );
      this.nextSeq += BigInt(live);
    }
    await c.run(`DROP TABLE ${temp}`);
    if (this.maxValidFrom === null || change.commitTime > this.maxValidFrom) this.maxValidFrom = change.commitTime;
  }
}
