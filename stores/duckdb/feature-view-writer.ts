import { DuckDBTimestampTZValue, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { entityKey, FeatureRowError, type CompiledView } from '../../framework/features/compiled-view';
import type { StoredFeatureValue } from '../../framework/features/feature-values';
import type { FeatureView } from '../../framework/features/feature-view';
import type { Change, TableSchema, Value } from '../../framework/types';
import { encodeRow } from '../../framework/value-json';
import { quoteIdent } from './duckdb-database';
import { makeChunk } from './chunk-columns';
import { featureCodec, HISTORY_COLUMNS, keyCodec, type ColumnCodec, type KeyColumn } from './feature-columns';

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;

/** A change a view could not turn into features: stored in `_feature_dead_letters` with the error. */
export interface DeadLetter {
  readonly view: string;
  readonly version: number;
  readonly table: string;
  readonly op: string;
  readonly lsn: bigint;
  readonly commitTime: bigint;
  readonly key: string | null;
  readonly row: string | null;
  readonly error: string;
}

type KeyId = string | number | bigint | boolean;

/** DuckDB numbers rows appended by the open transaction from MAX_ROW_ID (2^55); committed rowids lie below. */
const LOCAL_ROWIDS = 1n << 50n;

/** Version rows of one segment, column-wise, before they are written. */
class VersionRows {
  readonly keys: Value[][];
  readonly features: StoredFeatureValue[][];
  readonly validFrom: bigint[] = [];
  readonly validTo: (bigint | null)[] = [];
  readonly lsn: bigint[] = [];
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
  set(index: number, key: Value[], values: StoredFeatureValue[] | null, change: Change, deleted: boolean): void {
    for (let k = 0; k < this.keys.length; k++) this.keys[k]![index] = key[k]!;
    for (let f = 0; f < this.features.length; f++) this.features[f]![index] = values === null ? null : values[f]!;
    this.validFrom[index] = change.commitTime;
    this.validTo[index] = null;
    this.lsn[index] = change.lsn;
    this.op[index] = change.op;
    this.deleted[index] = deleted;
  }
}

function keyId(key: Value[]): KeyId {
  if (key.length === 1) {
    const v = key[0]!;
    return typeof v === 'object' ? encodeRow({ k: v }) : v;
  }
  return encodeRow(Object.fromEntries(key.map((v, i) => [i, v])));
}

/**
 * Writes the history table of one view version: each change becomes a version row (or a deletion
 * row), the entity's previous open row is closed (valid_to) set-wise, and rows are appended through
 * data chunks. Within one instant (a transaction's commit time), the last change of an entity wins,
 * so no zero-length versions remain and "newest version with valid_from <= t" is unambiguous. The
 * result does not depend on how changes are cut into batches: replaying the change log gives the
 * same rows as the live stream.
 */
export class FeatureViewWriter {
  readonly table: string;
  readonly keyColumns: readonly KeyColumn[];
  private readonly keyCodecs: ColumnCodec[];
  private readonly featureCodecs: ColumnCodec[];
  private readonly types: DuckDBType[];
  /** Every table key column is an entity key: snapshot reads then never meet an earlier row of their entity. */
  private readonly uniqueReads: boolean;
  /** The table is known to be empty (skip closing). */
  private empty = false;
  /** A committed rowid of the table, where the search for the highest rowid starts. */
  private rowIdHint = 0n;
  /** Newest valid_from possibly in the table (an over-estimate is safe: it only costs a cleanup pass). */
  private maxValidFrom: bigint | null = null;

  constructor(
    readonly view: FeatureView,
    schema: TableSchema,
    private readonly compiled: (schemaVersion: number) => CompiledView,
  ) {
    this.table = view.table;
    const columns = new Map(schema.columns.map((c) => [c.name, c]));
    this.keyCodecs = view.entity.keys.map((k) => keyCodec(columns.get(k)!));
    this.keyColumns = view.entity.keys.map((k, i) => ({ name: k, sql: this.keyCodecs[i]!.sql }));
    this.featureCodecs = Object.values(view.features).map(featureCodec);
    this.types = [...this.keyCodecs.map((c) => c.duck), ...this.featureCodecs.map((c) => c.duck), ...HISTORY_COLUMNS.map((c) => c.duck)];
    this.uniqueReads = schema.keyColumns.length > 0 && schema.keyColumns.every((k) => view.entity.keys.includes(k));
  }

  /** CREATE TABLE of the history table. */
  createSql(): string {
    const columns = [
      ...this.keyColumns.map((k) => `${quoteIdent(k.name)} ${k.sql} NOT NULL`),
      ...Object.keys(this.view.features).map((f, i) => `${quoteIdent(f)} ${this.featureCodecs[i]!.sql}`),
      ...HISTORY_COLUMNS.map((c) => `${quoteIdent(c.name)} ${c.sql}`),
    ];
    return `CREATE TABLE IF NOT EXISTS ${quoteIdent(this.table)} (${columns.join(', ')})`;
  }

  /** Reads what the writer needs to know about the table's contents; after it exists. */
  async load(c: DuckDBConnection): Promise<void> {
    const rows = (await c.runAndReadAll(`SELECT epoch_us(max(valid_from)) FROM ${quoteIdent(this.table)}`)).getRows();
    const max = rows[0]?.[0] as bigint | null;
    this.maxValidFrom = max === null || max === undefined ? null : BigInt(max);
    this.empty = this.maxValidFrom === null;
  }

  /** Forgets every row (the change log restarted from a new snapshot). */
  async clear(c: DuckDBConnection): Promise<void> {
    await c.run(`DELETE FROM ${quoteIdent(this.table)}`);
    this.empty = true;
    this.rowIdHint = 0n;
    this.maxValidFrom = null;
  }

  /** Applies changes of the view's source table, in order. Rows the view rejects go to `deadLetters`. */
  async write(c: DuckDBConnection, changes: readonly Change[], deadLetters: DeadLetter[]): Promise<void> {
    let start = 0;
    for (let i = 0; i < changes.length; i++) {
      if (changes[i]!.op !== 't') continue;
      await this.writeSegment(c, changes, start, i, deadLetters);
      await this.truncate(c, changes[i]!);
      start = i + 1;
    }
    await this.writeSegment(c, changes, start, changes.length, deadLetters);
  }

  private deadLetter(change: Change, error: string): DeadLetter {
    const row = change.after ?? change.before;
    return {
      view: this.view.name,
      version: this.view.version,
      table: change.table,
      op: change.op,
      lsn: change.lsn,
      commitTime: change.commitTime,
      key: change.key === null ? null : encodeRow(change.key),
      row: row === null ? null : encodeRow(row),
      error,
    };
  }

  private async writeSegment(c: DuckDBConnection, changes: readonly Change[], from: number, to: number, deadLetters: DeadLetter[]): Promise<void> {
    if (from >= to) return;
    const rows = new VersionRows(this.keyCodecs.length, this.featureCodecs.length);
    const latest = new Map<KeyId, number>();
    const firstRows: number[] = [];
    let onlyReads = true;
    const add = (key: Value[], values: StoredFeatureValue[] | null, change: Change, deleted: boolean) => {
      const id = keyId(key);
      const i = latest.get(id);
      if (i !== undefined && rows.validFrom[i] === change.commitTime) {
        rows.set(i, key, values, change, deleted);
        return;
      }
      if (i !== undefined) rows.validTo[i] = change.commitTime;
      else firstRows.push(rows.length);
      latest.set(id, rows.length);
      rows.set(rows.length, key, values, change, deleted);
    };

    for (let n = from; n < to; n++) {
      const change = changes[n]!;
      if (change.op !== 'r') onlyReads = false;
      if (change.op === 'd') {
        const key = entityKey(this.view, change.before ?? change.key);
        if (typeof key === 'string') deadLetters.push(this.deadLetter(change, `delete cannot be mapped to an entity: ${key}`));
        else add(key, null, change, true);
        continue;
      }
      const key = entityKey(this.view, change.after);
      if (typeof key === 'string') {
        deadLetters.push(this.deadLetter(change, `row has no entity key: ${key}`));
        continue;
      }
      if (change.op === 'u' && change.before) {
        // A key update moves the row: the old entity is deleted.
        const old = entityKey(this.view, change.before);
        if (typeof old !== 'string' && keyId(old) !== keyId(key)) add(old, null, change, true);
      }
      let values: StoredFeatureValue[] | null;
      try {
        values = this.compiled(change.schemaVersion).evaluate(change.after!, { op: change.op, table: change.table });
      } catch (error) {
        if (!(error instanceof FeatureRowError)) throw error;
        deadLetters.push(this.deadLetter(change, error.message));
        continue;
      }
      add(key, values, change, values === null);
    }
    if (rows.length === 0) return;

    const close = !this.empty && !(onlyReads && this.uniqueReads);
    // The rows already in the table; the segment's rows are appended after them.
    const before = close ? await this.lastRowId(c) : -1n;
    await this.append(c, rows);
    if (close) await this.closeOpenRows(c, before, rows, firstRows);
    this.empty = false;
    for (const vf of rows.validFrom) if (this.maxValidFrom === null || vf > this.maxValidFrom) this.maxValidFrom = vf;
  }

  /**
   * The highest rowid in the table. Scanning only from the last committed maximum seen (rowid
   * filters skip row groups) gives the same answer whenever a row lies there; otherwise (rows
   * renumbered by a vacuum, a rollback) the whole table is scanned.
   */
  private async lastRowId(c: DuckDBConnection): Promise<bigint> {
    const table = quoteIdent(this.table);
    let max = (await c.runAndReadAll(`SELECT max(rowid) FROM ${table} WHERE rowid >= ${this.rowIdHint}`)).getRows()[0]![0] as bigint | null;
    if (max === null) max = (await c.runAndReadAll(`SELECT coalesce(max(rowid), -1) FROM ${table}`)).getRows()[0]![0] as bigint;
    // Rows of the open transaction have rowids from DuckDB's MAX_ROW_ID (2^55) up; only committed ones make a hint.
    if (BigInt(max) >= 0n && BigInt(max) < LOCAL_ROWIDS) this.rowIdHint = BigInt(max);
    return BigInt(max);
  }

  /**
   * Sets valid_to on the open rows (rowid <= `before`) of the entities the segment touched, to the
   * valid_from of each entity's first new row (rowid > `before`): one set-wise UPDATE, the new rows
   * serving as the list of touched keys.
   */
  private async closeOpenRows(c: DuckDBConnection, before: bigint, rows: VersionRows, firstRows: readonly number[]): Promise<void> {
    const fv = quoteIdent(this.table);
    const keys = this.keyColumns.map((k) => quoteIdent(k.name));
    const match = keys.map((k) => `${fv}.${k} = n.${k}`).join(' AND ');
    await c.run(
      `UPDATE ${fv} SET valid_to = n.valid_from
         FROM (SELECT ${keys.join(', ')}, min(valid_from) AS valid_from FROM ${fv} WHERE rowid > ${before} GROUP BY ALL) n
        WHERE ${match} AND ${fv}.valid_to IS NULL AND ${fv}.rowid <= ${before}`,
    );
    let minFirst: bigint | null = null;
    for (const i of firstRows) if (minFirst === null || rows.validFrom[i]! < minFirst) minFirst = rows.validFrom[i]!;
    if (this.maxValidFrom !== null && minFirst !== null && minFirst <= this.maxValidFrom) {
      // An open row of the same instant was just closed at its own valid_from: the new row supersedes it.
      await c.run(`DELETE FROM ${fv} WHERE valid_to = valid_from`);
    }
  }

  private async append(c: DuckDBConnection, rows: VersionRows): Promise<void> {
    const appender = await c.createAppender(this.table);
    const [validFrom, validTo, lsn, op, deleted] = HISTORY_COLUMNS;
    for (let s = 0; s < rows.length; s += CHUNK_ROWS) {
      const e = Math.min(s + CHUNK_ROWS, rows.length);
      const columns = [
        ...this.keyCodecs.map((codec, k) => codec.column(rows.keys[k]!, s, e)),
        ...this.featureCodecs.map((codec, f) => codec.column(rows.features[f]!, s, e)),
        validFrom!.column(rows.validFrom, s, e),
        validTo!.column(rows.validTo, s, e),
        lsn!.column(rows.lsn, s, e),
        op!.column(rows.op, s, e),
        deleted!.column(rows.deleted, s, e),
      ];
      appender.appendDataChunk(makeChunk(this.types, e - s, columns));
    }
    appender.closeSync();
  }

  /** A truncate closes every open row and records a deletion for each entity that had one. */
  private async truncate(c: DuckDBConnection, change: Change): Promise<void> {
    if (this.empty) return;
    const fv = quoteIdent(this.table);
    const keys = this.keyColumns.map((k) => quoteIdent(k.name)).join(', ');
    const temp = quoteIdent(`_ff_truncated_${this.table}`);
    const at = [new DuckDBTimestampTZValue(change.commitTime)];
    await c.run(`CREATE OR REPLACE TEMP TABLE ${temp} AS SELECT ${keys} FROM ${fv} WHERE valid_to IS NULL AND NOT deleted`);
    await c.run(`DELETE FROM ${fv} WHERE valid_to IS NULL AND NOT deleted AND valid_from = $1`, at);
    await c.run(`UPDATE ${fv} SET valid_to = $1 WHERE valid_to IS NULL AND NOT deleted`, at);
    await c.run(
      `INSERT INTO ${fv} (${keys}, valid_from, valid_to, lsn, op, deleted) SELECT ${keys}, $1, NULL, $2, 't', true FROM ${temp}`,
      [at[0]!, change.lsn],
    );
    await c.run(`DROP TABLE ${temp}`);
    if (this.maxValidFrom === null || change.commitTime > this.maxValidFrom) this.maxValidFrom = change.commitTime;
  }
}

