import {
  BIGINT,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  INTEGER,
  LIST,
  listValue,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
} from '@duckdb/node-api';
import type { ChangeConsumer, ChangeLog, ChangeLogState, ChangeLogTableStats, SourceRecord } from '../../framework/interfaces/index.js';
import type { Change, ChangeBatch, ColumnSchema, Row, SnapshotBatch, StreamStorage, TableSchema } from '../../framework/types.js';
import { decodeRow, encodeRow, encodeValue, keyPrefix, rowEncoder } from '../../framework/value-json.js';
import { FeatureflowError } from '../../framework/errors.js';
import { openDuckDB, quoteIdent, quoteLiteral, type DuckDBDatabase, type OpenOptions } from './duckdb-database.js';
import {
  changeLogViewSql,
  consecutiveSeqBytes,
  positionedSeqBytes,
  snapshotLayout,
  keyPrefilter,
  snapshotSelectSql,
  snapshotStorageName,
  streamLayout,
  streamMetaColumn,
  streamSelectSql,
  streamStorageName,
  TypedTableWriter,
  type SnapshotTableInfo,
  type StreamTableInfo,
} from './typed-tables.js';

/** Rows per DuckDB data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;

const CHANGE_COLUMNS = [BIGINT, VARCHAR, VARCHAR, VARCHAR, VARCHAR, VARCHAR, UBIGINT, UBIGINT, TIMESTAMPTZ, UBIGINT, INTEGER, VARCHAR];

const DDL = `
CREATE TABLE IF NOT EXISTS _changes (
  seq BIGINT NOT NULL,
  table_name VARCHAR NOT NULL,
  op VARCHAR NOT NULL,
  key VARCHAR,
  before VARCHAR,
  after VARCHAR,
  lsn UBIGINT NOT NULL,
  commit_lsn UBIGINT NOT NULL,
  commit_time TIMESTAMPTZ NOT NULL,
  xid UBIGINT NOT NULL,
  schema_version INTEGER NOT NULL,
  -- An update's old key, where the old row came with it (a key change, REPLICA IDENTITY FULL).
  old_key VARCHAR
);
CREATE TABLE IF NOT EXISTS _schemas (
  table_name VARCHAR NOT NULL,
  version INTEGER NOT NULL,
  columns VARCHAR NOT NULL,
  key_columns VARCHAR NOT NULL,
  PRIMARY KEY (table_name, version)
);
CREATE TABLE IF NOT EXISTS _checkpoint (
  id INTEGER PRIMARY KEY,
  slot VARCHAR,
  tables VARCHAR,
  lsn UBIGINT,
  snapshot_lsn UBIGINT,
  updated_at TIMESTAMPTZ,
  -- What the source created for this log (JSON, see SourceRecord).
  source VARCHAR
);
CREATE TABLE IF NOT EXISTS _snapshot_tables (
  table_name VARCHAR PRIMARY KEY,
  rows BIGINT NOT NULL,
  done BOOLEAN NOT NULL,
  storage VARCHAR NOT NULL,
  seq_base BIGINT NOT NULL,
  lsn UBIGINT NOT NULL,
  commit_time BIGINT NOT NULL,
  schema_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _stream_tables (
  table_name VARCHAR NOT NULL,
  schema_version INTEGER NOT NULL,
  storage VARCHAR NOT NULL,
  PRIMARY KEY (table_name, schema_version)
);
CREATE TABLE IF NOT EXISTS _table_starts (
  table_name VARCHAR PRIMARY KEY,
  -- NULL: to be read again (see ChangeBatch.rereads)
  lsn UBIGINT
);
`;

/**
 * `current_rows('schema.table')`: the rows a table holds now, rebuilt from the log, one row per row
 * of the table (`key`, `row` as JSON). Changes after the table's last truncate count (a table read
 * again is logged as a truncate and its reads); each read or insert adds a row under its key, each
 * delete removes one, and an update removes one under its old key (the new key when the old row did
 * not come with it) and adds one under the new: so key changes leave no old key behind and, under
 * REPLICA IDENTITY FULL without a primary key, duplicate rows keep their count. A key's row is its
 * latest image.
 */
const CURRENT_ROWS_MACRO = `
CREATE OR REPLACE MACRO current_rows(tbl) AS TABLE
WITH c AS (
  SELECT l.seq, l.op, l.key, l.after, x.old_key FROM change_log l
    LEFT JOIN (SELECT seq, old_key FROM _changes WHERE old_key IS NOT NULL) x ON x.seq = l.seq
   WHERE l.table_name = tbl
), since AS (SELECT coalesce(max(seq), -1) AS s FROM c WHERE op = 't'),
live AS (SELECT c.* FROM c, since WHERE c.seq > since.s AND c.op <> 't'),
ev AS (
  SELECT key AS k, seq, CASE WHEN op = 'd' THEN -1 ELSE 1 END AS delta, after FROM live
  UNION ALL SELECT coalesce(old_key, key), seq, -1, NULL FROM live WHERE op = 'u'
), counted AS (
  SELECT k, CAST(sum(delta) AS BIGINT) AS n, arg_max(after, seq) FILTER (WHERE after IS NOT NULL) AS row FROM ev GROUP BY k
)
SELECT k AS key, row FROM counted, range(n) WHERE n > 0`;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Encodes the key columns of a row in a fixed order, so equal keys give equal strings. An int8 within
 * ±2^53 is written as the JSON number an int2 or int4 would be: widening a key column
 * (`ALTER COLUMN id TYPE int8`) must not change the identity of the rows already in the log.
 */
export function encodeKey(key: Row | null, keyColumns: readonly string[]): string | null {
  if (key === null) return null;
  // Built as text, in key-column order: this runs for every change.
  let out = '{';
  for (let i = 0; i < keyColumns.length; i++) {
    const c = keyColumns[i]!;
    const v = key[c] ?? null;
    out += (i === 0 ? '' : ',') + keyPrefix(c) + encodeValue(typeof v === 'bigint' && v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v);
  }
  return out + '}';
}

/** Compiled row encoders per stored schema (by its columns array). */
const rowEncoders = new WeakMap<readonly ColumnSchema[], (row: Row) => string>();
/** Names that `for…in` enumerates first, in numeric order: encodeRow's key order would then differ from column order. */
const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

/**
 * The durable change log in a DuckDB file: the initial snapshot in typed tables (`_snapshot__<table>`,
 * listed in `_snapshot_tables`), the stream's inserts and updates without an old row and deletes in typed tables
 * per schema version (`_stream__<table>__v<n>`, listed in `_stream_tables`), every other change in
 * `_changes` as JSON, all bulk-written through data-chunk appenders and read through the view
 * `change_log`; `_schemas` and `_checkpoint`. A complete batch, the consumers' writes and the
 * checkpoint commit in one DuckDB transaction: exactly once.
 */
export class DuckDBChangeLog implements ChangeLog {
  private db: DuckDBDatabase | undefined;
  private appender: DuckDBAppender | undefined;
  /** True while `_changes`' appender holds rows not yet flushed. */
  private appended = false;
  private inTransaction = false;
  private seq = 0n;
  /** `seq` when the open transaction began, restored by a rollback. */
  private seqAtBegin = 0n;
  private readonly schemaCache = new Map<string, TableSchema & { version: number }>();
  private readonly keyColumns = new Map<string, readonly string[]>();
  private readonly consumers: ChangeConsumer<DuckDBConnection>[] = [];
  /** The snapshot table being written (one per source table, in one transaction). */
  private snapshotWriter: { table: string; writer: TypedTableWriter; rows: number } | undefined;
  /** Stream tables by `table#version`, and the appenders open on them (kept across batches, released by {@link rollback}). */
  private streamTables = new Map<string, StreamTableInfo>();
  private readonly streamWriters = new Map<string, TypedTableWriter>();

  /** `readOnly` opens the file for reading only (no DDL, no appender, consumers not opened): for `status`. */
  constructor(
    private readonly path: string,
    private readonly options: OpenOptions = {},
  ) {}

  /** Adds a consumer applied inside each batch's transaction (feature tables). Before {@link open}. */
  addConsumer(consumer: ChangeConsumer<DuckDBConnection>): void {
    this.consumers.push(consumer);
  }

  get needsChanges(): boolean {
    return this.consumers.length > 0;
  }

  /** The DuckDB connection (for readers in the same process); after {@link open}. */
  get connection(): DuckDBConnection {
    if (!this.db) throw new Error('the change log is not open; call open() first');
    return this.db.connection;
  }

  async open(): Promise<void> {
    if (this.db) return;
    this.db = await openDuckDB(this.path, { ...this.options, compression: this.options.compression ?? 'fast' });
    try {
      await this.checkLayout();
    } catch (error) {
      this.db.close();
      this.db = undefined;
      throw error;
    }
    if (this.options.readOnly) {
      for (const schema of await this.schemas()) this.remember(schema);
      await this.loadStreamTables();
      return;
    }
    await this.db.connection.run(DDL);
    await this.migrate();
    for (const schema of await this.schemas()) this.remember(schema);
    await this.loadStreamTables();
    const reader = await this.db.connection.runAndReadAll(
      'SELECT greatest((SELECT coalesce(max(seq), 0) FROM _changes), (SELECT coalesce(max(seq_base + rows), 0) FROM _snapshot_tables))',
    );
    this.seq = BigInt(reader.getRows()[0]![0] as bigint);
    for (const t of this.streamTables.values()) {
      const max = (await this.db.connection.runAndReadAll(`SELECT max(${streamMetaColumn(t, 'seq')}) FROM ${quoteIdent(t.storage)}`)).getRows()[0]![0];
      if (max !== null && BigInt(max as bigint) > this.seq) this.seq = BigInt(max as bigint);
    }
    await this.updateView();
    // After change_log: DuckDB binds a macro's tables when it is created.
    await this.db.connection.run(CURRENT_ROWS_MACRO);
    this.appender = await this.db.connection.createAppender('_changes');
    // Consumers check their definitions at start-up, not only at the first batch; a refusal leaves
    // the file closed and untouched.
    try {
      for (const consumer of this.consumers) await consumer.open?.(this.db.connection);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /**
   * Refuses a file whose change log has the layout of an earlier featureflow, before anything is
   * written to it: snapshots as JSON (no `_snapshot_tables.storage`), or typed tables without float
   * overrides and stream tables (no `_stream_tables`).
   */
  private async checkLayout(): Promise<void> {
    const rows = (
      await this.connection.runAndReadAll(
        `SELECT count(*) FILTER (WHERE column_name = 'storage'), count(*),
                (SELECT count(*) FROM information_schema.tables WHERE table_name = '_stream_tables')
           FROM information_schema.columns WHERE table_name = '_snapshot_tables'`,
      )
    ).getRows()[0] as [bigint, bigint, bigint];
    if (Number(rows[1]) > 0 && (Number(rows[0]) === 0 || Number(rows[2]) === 0)) {
      throw new FeatureflowError(
        'FF_STORE_FORMAT',
        `the change log in ${this.path} was written by an earlier featureflow, whose layout this version does not read; ` +
          'point store.path at a new file (or delete this one) and run `featureflow ingest` to take a new snapshot',
      );
    }
  }

  async state(): Promise<ChangeLogState> {
    const hasSource = await this.hasColumn('_checkpoint', 'source');
    const rows = (await this.connection.runAndReadAll(`SELECT slot, tables, lsn, ${hasSource ? 'source' : 'NULL'} FROM _checkpoint WHERE id = 1`)).getRows();
    const empty = { checkpoint: null, snapshotDone: false, tables: null, sourceRecord: null, lastCommitTime: null, tableStarts: new Map(), rereads: [] };
    if (rows.length === 0) return empty;
    const [slot, tables, lsn, source] = rows[0]! as [string | null, string | null, bigint | null, string | null];
    // A log written before sources recorded what they created holds the slot it followed.
    const sourceRecord = source !== null ? (JSON.parse(source) as SourceRecord) : slot !== null ? { slot } : null;
    if (tables === null) return { ...empty, sourceRecord };
    const tableList = JSON.parse(tables) as string[];
    const done = (await this.connection.runAndReadAll('SELECT table_name, lsn FROM _snapshot_tables WHERE done')).getRows() as [string, bigint][];
    // Tables read again mid-stream start later than their snapshot (files from before have no such table).
    const hasStarts = (await this.connection.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = '_table_starts'`)).getRows()[0]![0];
    const starts = hasStarts ? ((await this.connection.runAndReadAll('SELECT table_name, lsn FROM _table_starts ORDER BY table_name')).getRows() as [string, bigint | null][]) : [];
    const laterStarts = starts.filter(([, start]) => start !== null) as [string, bigint][];
    // The newest commit time of every storage: `_changes`, snapshots, and each stream table.
    const streamTimes = [...this.streamTables.values()].map(
      (t) => `(SELECT epoch_us(max(${streamMetaColumn(t, 'commit_time')})) FROM ${quoteIdent(t.storage)})`,
    );
    const last = (
      await this.connection.runAndReadAll(
        `SELECT greatest((SELECT epoch_us(max(commit_time)) FROM _changes), (SELECT max(commit_time) FROM _snapshot_tables)${streamTimes.map((t) => `, ${t}`).join('')})`,
      )
    ).getRows()[0]![0] as bigint | null;
    return {
      lastCommitTime: last === null ? null : BigInt(last),
      checkpoint: lsn === null ? null : BigInt(lsn),
      snapshotDone: done.length === tableList.length,
      tables: tableList,
      sourceRecord,
      tableStarts: new Map([...done, ...laterStarts].map(([table, start]) => [table, BigInt(start)])),
      rereads: starts.filter(([, start]) => start === null).map(([table]) => table),
    };
  }

  async reset(args: { tables: readonly string[]; lsn: bigint }): Promise<void> {
    await this.rollback();
    const c = this.connection;
    const { sourceRecord } = await this.state();
    await c.run('BEGIN');
    try {
      this.closeStreamWriters();
      for (const t of await this.snapshotTables()) await c.run(`DROP TABLE IF EXISTS ${quoteIdent(t.storage)}`);
      for (const t of this.streamTables.values()) await c.run(`DROP TABLE IF EXISTS ${quoteIdent(t.storage)}`);
      await c.run('DELETE FROM _changes; DELETE FROM _schemas; DELETE FROM _snapshot_tables; DELETE FROM _stream_tables; DELETE FROM _table_starts; DELETE FROM _checkpoint;');
      await c.run(changeLogViewSql([], []));
      await c.run('INSERT INTO _checkpoint (id, tables, lsn, snapshot_lsn, updated_at, source) VALUES (1, $1, NULL, $2, now(), $3)', [
        JSON.stringify(args.tables),
        args.lsn,
        sourceRecord === null ? null : JSON.stringify(sourceRecord),
      ]);
      for (const consumer of this.consumers) await consumer.reset?.(c);
      await c.run('COMMIT');
    } catch (error) {
      await c.run('ROLLBACK');
      throw error;
    }
    this.seq = 0n;
    this.schemaCache.clear();
    this.keyColumns.clear();
    this.streamTables.clear();
  }

  async saveSourceRecord(record: SourceRecord): Promise<void> {
    await this.connection.run(
      `INSERT INTO _checkpoint (id, source, updated_at) VALUES (1, $1, now())
         ON CONFLICT (id) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at`,
      [JSON.stringify(record)],
    );
  }

  /** Brings a file of an earlier version of this layout up to date (columns added since, filled). */
  private async migrate(): Promise<void> {
    const c = this.connection;
    await c.run('ALTER TABLE _checkpoint ADD COLUMN IF NOT EXISTS source VARCHAR');
    if (await this.hasColumn('_changes', 'old_key')) return;
    await c.run('ALTER TABLE _changes ADD COLUMN old_key VARCHAR');
    // Updates that came with their old row: their old key, as append() now writes it.
    const rows = (
      await c.runAndReadAll(`SELECT seq, table_name, before, schema_version FROM _changes WHERE op = 'u' AND before IS NOT NULL`)
    ).getRows() as [bigint, string, string, number][];
    if (rows.length === 0) return;
    const schemas = new Map((await this.schemas()).map((s) => [`${s.table}#${s.version}`, s]));
    const values = rows.map(([seq, table, before, version]) => {
      const schema = schemas.get(`${table}#${version}`);
      const oldKey = schema ? encodeKey(decodeRow(before, schema.columns), schema.keyColumns) : null;
      return `(${BigInt(seq)}, ${oldKey === null ? 'NULL' : quoteLiteral(oldKey)})`;
    });
    for (let i = 0; i < values.length; i += 1000) {
      await c.run(`UPDATE _changes SET old_key = v.k FROM (VALUES ${values.slice(i, i + 1000).join(', ')}) v(s, k) WHERE _changes.seq = v.s`);
    }
  }

  private async hasColumn(table: string, column: string): Promise<boolean> {
    const rows = (
      await this.connection.runAndReadAll('SELECT count(*) FROM information_schema.columns WHERE table_name = $1 AND column_name = $2', [table, column])
    ).getRows();
    return Number(rows[0]![0]) > 0;
  }

  async apply(batch: ChangeBatch): Promise<void> {
    const c = this.connection;
    if (!this.inTransaction) {
      await c.run('BEGIN');
      this.inTransaction = true;
      this.seqAtBegin = this.seq;
    }
    try {
      for (const schema of batch.schemas) {
        await c.run('INSERT OR REPLACE INTO _schemas VALUES ($1, $2, $3, $4)', [
          schema.table,
          schema.version,
          JSON.stringify(schema.columns),
          JSON.stringify(schema.keyColumns),
        ]);
        this.remember(schema);
      }
      if (batch.snapshot) await this.appendSnapshot(batch.snapshot);
      else if (batch.stored) await this.appendStored(batch.stored);
      else this.append(batch.changes);
      if (this.consumers.length > 0) {
        this.flushAll();
        for (const consumer of this.consumers) await consumer.apply(c, batch);
      }
      if (batch.complete) {
        this.flushAll();
        this.endSnapshotTable();
        if (batch.tableStart) await c.run('INSERT OR REPLACE INTO _table_starts VALUES ($1, $2)', [batch.tableStart.table, batch.tableStart.lsn]);
        for (const table of Object.keys(batch.rereads ?? {})) await c.run('INSERT OR REPLACE INTO _table_starts VALUES ($1, NULL)', [table]);
        // One round trip, no prepared statement: this ends every batch. A failed UPDATE skips the COMMIT.
        await c.run(`UPDATE _checkpoint SET lsn = ${BigInt(batch.checkpoint)}, updated_at = now() WHERE id = 1; COMMIT`);
        this.inTransaction = false;
      }
    } catch (error) {
      await this.rollback();
      throw error;
    }
  }

  /**
   * Appends a snapshot batch to its table's typed storage, creating the storage (and adding it to
   * `change_log`) with the table's first batch, inside the open transaction.
   */
  private async appendSnapshot(snapshot: SnapshotBatch): Promise<void> {
    const c = this.connection;
    if (this.snapshotWriter?.table !== snapshot.table) {
      this.endSnapshotTable();
      const schema = this.schemaCache.get(`${snapshot.table}#${snapshot.schemaVersion}`);
      if (!schema) throw new Error(`snapshot rows of ${snapshot.table} arrived before its schema (version ${snapshot.schemaVersion})`);
      const storage = snapshotStorageName(snapshot.table);
      const writer = await TypedTableWriter.create(c, storage, snapshotLayout(schema.columns));
      this.snapshotWriter = { table: snapshot.table, writer, rows: 0 };
      await c.run('DELETE FROM _snapshot_tables WHERE table_name = $1', [snapshot.table]);
      await c.run('INSERT INTO _snapshot_tables VALUES ($1, 0, false, $2, $3, $4, $5, $6)', [
        snapshot.table,
        storage,
        this.seq,
        snapshot.lsn,
        snapshot.commitTime,
        snapshot.schemaVersion,
      ]);
      await this.updateView();
    }
    this.snapshotWriter.writer.append(snapshot.rows, [consecutiveSeqBytes(this.seq + 1n, snapshot.rows.length)]);
    this.seq += BigInt(snapshot.rows.length);
    this.snapshotWriter.rows += snapshot.rows.length;
    // The table's batches commit together with its last one: only that one needs recording. A table
    // added to a running log joins the log's tables with it.
    if (snapshot.done) {
      await c.run('UPDATE _snapshot_tables SET rows = $2, done = true WHERE table_name = $1', [snapshot.table, this.snapshotWriter.rows]);
      const tables = JSON.parse((await c.runAndReadAll('SELECT tables FROM _checkpoint WHERE id = 1')).getRows()[0]![0] as string) as string[];
      if (!tables.includes(snapshot.table)) await c.run('UPDATE _checkpoint SET tables = $1 WHERE id = 1', [JSON.stringify([...tables, snapshot.table])]);
    }
  }

  /** Flushes and closes the snapshot table's appender, if one is open (before a commit or the next table). */
  private endSnapshotTable(): void {
    if (!this.snapshotWriter) return;
    this.snapshotWriter.writer.flush();
    this.snapshotWriter.writer.close();
    this.snapshotWriter = undefined;
  }

  /** The snapshot tables recorded in `_snapshot_tables`, with their schemas. */
  private async snapshotTables(): Promise<SnapshotTableInfo[]> {
    const rows = (
      await this.connection.runAndReadAll('SELECT table_name, storage, seq_base, lsn, commit_time, schema_version FROM _snapshot_tables ORDER BY seq_base')
    ).getRows() as [string, string, bigint, bigint, bigint, number][];
    return rows.flatMap(([table, storage, seqBase, lsn, commitTime, version]) => {
      const schema = this.schemaCache.get(`${table}#${version}`);
      return schema ? [{ table, storage, schema, seqBase: BigInt(seqBase), lsn: BigInt(lsn), commitTime: BigInt(commitTime) }] : [];
    });
  }

  /** (Re)creates the view `change_log` over `_changes` and every typed table. */
  private async updateView(): Promise<void> {
    await this.connection.run(changeLogViewSql(await this.snapshotTables(), [...this.streamTables.values()]));
  }

  /** Reads `_stream_tables` (at open, and after a rollback, which may have dropped tables created in it). */
  private async loadStreamTables(): Promise<void> {
    const rows = (
      await this.connection.runAndReadAll('SELECT table_name, schema_version, storage FROM _stream_tables ORDER BY table_name, schema_version')
    ).getRows() as [string, number, string][];
    this.streamTables = new Map();
    for (const [table, version, storage] of rows) {
      const schema = this.schemaCache.get(`${table}#${version}`);
      if (schema) this.streamTables.set(`${table}#${version}`, { table, storage, schema });
    }
  }

  /**
   * Appends a stream batch in storage form: each group to its table version's typed storage (created,
   * and added to `change_log`, with the version's first rows), the rest to `_changes`, each change
   * numbered by its position in the batch.
   */
  private async appendStored(stored: StreamStorage): Promise<void> {
    const base = this.seq;
    for (const group of stored.groups) {
      const key = `${group.table}#${group.schemaVersion}`;
      let writer = this.streamWriters.get(key);
      if (!writer) {
        const schema = this.schemaCache.get(key);
        if (!schema) throw new Error(`stream rows of ${group.table} arrived before its schema (version ${group.schemaVersion})`);
        const layout = streamLayout(schema.columns);
        let table = this.streamTables.get(key);
        if (table) writer = await TypedTableWriter.open(this.connection, table.storage, layout);
        else {
          table = { table: group.table, storage: streamStorageName(group.table, group.schemaVersion), schema };
          writer = await TypedTableWriter.create(this.connection, table.storage, layout);
          await this.connection.run('INSERT INTO _stream_tables VALUES ($1, $2, $3)', [table.table, group.schemaVersion, table.storage]);
          this.streamTables.set(key, table);
          await this.updateView();
        }
        this.streamWriters.set(key, writer);
      }
      const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      writer.append(group.rows, [
        positionedSeqBytes(base, group.positions),
        group.ops,
        bytes(group.lsns),
        bytes(group.commitLsns),
        bytes(group.commitTimes),
        bytes(group.xids),
      ]);
    }
    this.append(stored.rest, stored.restPositions);
    this.seq = base + BigInt(stored.size);
  }

  /** Flushes every appender into the open transaction. */
  private flushAll(): void {
    if (this.appended) this.appender!.flushSync();
    this.appended = false;
    this.snapshotWriter?.writer.flush();
    for (const writer of this.streamWriters.values()) writer.flush();
  }

  /** Closes the stream tables' appenders, dropping anything they hold. */
  private closeStreamWriters(): void {
    for (const writer of this.streamWriters.values()) writer.discard();
    this.streamWriters.clear();
  }

  /**
   * Appends changes to `_changes` through data chunks, numbered in order after the log's last `seq`,
   * or, with `positions`, each at `seq` + 1 + its position (and the log's `seq` is left to the caller).
   */
  private append(changes: readonly Change[], positions?: readonly number[]): void {
    const base = this.seq;
    // Consecutive changes mostly share table version, commit time and xid: convert each once per run.
    let table: string | undefined;
    let version = 0;
    let encode = encodeRow;
    let time: bigint | undefined;
    let timeValue: DuckDBTimestampTZValue | undefined;
    let xid: number | undefined;
    let xidValue = 0n;
    for (let start = 0; start < changes.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, changes.length - start);
      const cols: unknown[][] = CHANGE_COLUMNS.map(() => new Array(n));
      for (let i = 0; i < n; i++) {
        const ch = changes[start + i]!;
        if (positions) cols[0]![i] = base + BigInt(positions[start + i]! + 1);
        else cols[0]![i] = this.seq += 1n;
        cols[1]![i] = ch.table;
        cols[2]![i] = ch.op;
        if (ch.table !== table || ch.schemaVersion !== version) {
          table = ch.table;
          version = ch.schemaVersion;
          encode = this.rowEncoderOf(table, version);
        }
        if (ch.commitTime !== time) {
          time = ch.commitTime;
          timeValue = new DuckDBTimestampTZValue(time);
        }
        if (ch.xid !== xid) {
          xid = ch.xid;
          xidValue = BigInt(xid);
        }
        cols[3]![i] = encodeKey(ch.key, this.keyColumnsOf(ch.table, ch.key));
        cols[4]![i] = ch.before === null ? null : encode(ch.before);
        cols[5]![i] = ch.after === null ? null : encode(ch.after);
        cols[6]![i] = ch.lsn;
        cols[7]![i] = ch.commitLsn;
        cols[8]![i] = timeValue;
        cols[9]![i] = xidValue;
        cols[10]![i] = ch.schemaVersion;
        cols[11]![i] = ch.op === 'u' && ch.before !== null ? encodeKey(ch.before, this.keyColumnsOf(ch.table, ch.key)) : null;
      }
      const chunk = DuckDBDataChunk.create(CHANGE_COLUMNS, n);
      chunk.setColumns(cols as never);
      this.appender!.appendDataChunk(chunk);
      this.appended = true;
    }
  }

  /**
   * The compiled encoder of a stored schema version: the same text as encodeRow for rows of those
   * columns, without its per-value dispatch. encodeRow when the version is unknown.
   */
  private rowEncoderOf(table: string, version: number): (row: Row) => string {
    const columns = this.schemaCache.get(`${table}#${version}`)?.columns;
    if (!columns || columns.some((c) => ARRAY_INDEX.test(c.name))) return encodeRow;
    let encode = rowEncoders.get(columns);
    if (!encode) rowEncoders.set(columns, (encode = rowEncoder(columns)));
    return encode;
  }

  private keyColumnsOf(table: string, key: Row | null): readonly string[] {
    return this.keyColumns.get(table) ?? (key ? Object.keys(key) : []);
  }

  private remember(schema: TableSchema & { version: number }): void {
    const known = this.schemaCache.get(`${schema.table}#${schema.version}`);
    if (!known) this.schemaCache.set(`${schema.table}#${schema.version}`, schema);
    this.keyColumns.set(schema.table, schema.keyColumns);
  }

  async rollback(): Promise<void> {
    if (!this.inTransaction) {
      // Between runs: the stream tables' appenders, kept open across batches, are released.
      this.closeStreamWriters();
      return;
    }
    this.inTransaction = false;
    this.snapshotWriter?.writer.discard();
    this.snapshotWriter = undefined;
    this.closeStreamWriters();
    try {
      this.appended = false;
      this.appender?.clear();
    } catch {
      // The appender may already be empty.
    }
    await this.connection.run('ROLLBACK');
    this.seq = this.seqAtBegin;
    // Stream tables created in the rolled-back transaction are gone.
    await this.loadStreamTables();
  }

  /**
   * One scan of the stream's changes however many keys (an UPDATE of a whole TOASTed table asks for
   * every row's image), then of the table's snapshot for the keys the stream never touched.
   */
  async lastRows(table: string, keys: readonly Row[]): Promise<(Row | null)[]> {
    if (keys.length === 0) return [];
    this.flushAll();
    const keyColumns = this.keyColumnsOf(table, keys[0]!);
    const encoded = keys.map((key) => encodeKey(key, keyColumns)!);
    const found = new Map<string, Row>();
    const lookup = async (sql: string, wanted: readonly string[]) => {
      const rows = (await this.connection.runAndReadAll(sql, [table, listValue([...new Set(wanted)])], [VARCHAR, LIST(VARCHAR)])).getRows() as [
        string,
        string,
        number,
      ][];
      for (const [key, after, version] of rows) found.set(key, decodeRow(after, this.schemaCache.get(`${table}#${version}`)?.columns ?? []));
    };
    // The stream: `_changes` and the table's typed stream rows, narrowed on a native key column
    // before their keys are printed.
    const stream = [
      'SELECT seq, table_name, key, after, schema_version FROM _changes',
      ...[...this.streamTables.values()]
        .filter((t) => t.table === table)
        .map((t) => `SELECT seq, table_name, key, after, schema_version FROM (${streamSelectSql(t, keyPrefilter(t.schema, keys))})`),
    ];
    await lookup(
      `SELECT key, after, schema_version FROM (${stream.join(' UNION ALL ')})
        WHERE table_name = $1 AND after IS NOT NULL AND key IN (SELECT unnest($2))
        QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1`,
      encoded,
    );
    const missing = keys.filter((_, i) => !found.has(encoded[i]!));
    const snapshot = (await this.snapshotTables()).find((t) => t.table === table);
    if (missing.length > 0 && snapshot) {
      await lookup(
        `SELECT key, after, schema_version FROM (${snapshotSelectSql(snapshot, keyPrefilter(snapshot.schema, missing))}) WHERE table_name = $1 AND key IN (SELECT unnest($2))`,
        missing.map((key) => encodeKey(key, keyColumns)!),
      );
    }
    return encoded.map((key) => found.get(key) ?? null);
  }

  async stats(): Promise<ChangeLogTableStats[]> {
    const rows = (
      await this.connection.runAndReadAll(
        'SELECT table_name, op, count(*) FROM change_log GROUP BY table_name, op ORDER BY table_name, op',
      )
    ).getRows() as [string, string, bigint][];
    const byTable = new Map<string, { table: string; changes: number; byOp: Record<string, number> }>();
    for (const [table, op, n] of rows) {
      const entry = byTable.get(table) ?? { table, changes: 0, byOp: {} };
      entry.changes += Number(n);
      entry.byOp[op] = Number(n);
      byTable.set(table, entry);
    }
    return [...byTable.values()];
  }

  async schemas(): Promise<(TableSchema & { version: number })[]> {
    const rows = (
      await this.connection.runAndReadAll('SELECT table_name, version, columns, key_columns FROM _schemas ORDER BY table_name, version')
    ).getRows() as [string, number, string, string][];
    return rows.map(([table, version, columns, keyColumns]) => ({
      table,
      version,
      columns: JSON.parse(columns) as ColumnSchema[],
      keyColumns: JSON.parse(keyColumns) as string[],
    }));
  }

  async close(): Promise<void> {
    if (!this.db) return;
    await this.rollback().catch(() => undefined);
    this.closeStreamWriters();
    try {
      this.appender?.closeSync();
    } catch {
      // Closing flushes; nothing is pending outside a transaction.
    }
    this.appender = undefined;
    this.db.close();
    this.db = undefined;
  }
}
