import type { DuckDBConnection } from '@duckdb/node-api';
import type { RowGroup, SnapshotPart, VersionedSchema } from '../../../framework/types.js';
import { quoteIdent } from '../duckdb-database.js';
import {
  snapshotLayout,
  snapshotStorageName,
  streamLayout,
  streamStorageName,
  type SnapshotTableInfo,
  type StreamTableInfo,
} from './typed-layout.js';
import { changeLogViewSql } from './typed-sql.js';
import { consecutiveSeqBytes, positionedSeqBytes, TypedTableWriter } from './typed-writer.js';

/**
 * The change log's typed tables: one per captured table for its snapshot's reads
 * (`_snapshot__<table>`, listed in `_snapshot_tables`), and one per table and schema version for the
 * stream's rows (`_stream__<table>__v<n>`, listed in `_stream_tables`), with the appenders open on
 * them (the stream's kept across batches until {@link release}), and the view `change_log` over
 * them and `_changes`.
 */
export class TypedStorage {
  /** The snapshot table being written (one per source table, in one transaction). */
  private snapshotWriter: { table: string; writer: TypedTableWriter; rows: number } | undefined;
  private streamTables = new Map<string, StreamTableInfo>();
  private readonly streamWriters = new Map<string, TypedTableWriter>();

  constructor(
    private readonly c: DuckDBConnection,
    private readonly schemaOf: (table: string, version: number) => VersionedSchema | undefined,
  ) {}

  /** Reads `_stream_tables` (at open, and after a rollback, which may have dropped tables created in it). */
  async load(): Promise<void> {
    const rows = (
      await this.c.runAndReadAll(
        'SELECT table_name, schema_version, storage FROM _stream_tables ORDER BY table_name, schema_version',
      )
    ).getRows() as [string, number, string][];
    this.streamTables = new Map();
    for (const [table, version, storage] of rows) {
      const schema = this.schemaOf(table, version);
      if (schema) this.streamTables.set(`${table}#${version}`, { table, storage, schema });
    }
  }

  get streams(): readonly StreamTableInfo[] {
    return [...this.streamTables.values()];
  }

  /** The snapshot tables recorded in `_snapshot_tables`, with their schemas. */
  async snapshots(): Promise<SnapshotTableInfo[]> {
    const rows = (
      await this.c.runAndReadAll(
        'SELECT table_name, storage, seq_base, lsn, commit_time, schema_version FROM _snapshot_tables ORDER BY seq_base',
      )
    ).getRows() as [string, string, bigint, bigint, bigint, number][];
    return rows.flatMap(([table, storage, seqBase, lsn, commitTime, version]) => {
      const schema = this.schemaOf(table, version);
      return schema
        ? [{ table, storage, schema, seqBase: BigInt(seqBase), lsn: BigInt(lsn), commitTime: BigInt(commitTime) }]
        : [];
    });
  }

  /** (Re)creates the view `change_log` over `_changes` and every typed table. */
  async updateView(): Promise<void> {
    await this.c.run(changeLogViewSql(await this.snapshots(), this.streams));
  }

  /**
   * Appends a batch of a table's snapshot to its typed table (created, and added to `change_log`,
   * with the table's first batch), numbered after `seq`; the last batch records the table as done.
   */
  async appendSnapshot(part: SnapshotPart, group: RowGroup, seq: bigint): Promise<void> {
    if (this.snapshotWriter?.table !== part.table) {
      await this.endSnapshotTable();
      const schema = this.schemaOf(part.table, group.schemaVersion);
      if (!schema)
        throw new Error(`snapshot rows of ${part.table} arrived before its schema (version ${group.schemaVersion})`);
      const storage = snapshotStorageName(part.table);
      const writer = await TypedTableWriter.create(this.c, storage, snapshotLayout(schema.columns), 'appender');
      this.snapshotWriter = { table: part.table, writer, rows: 0 };
      await this.c.run('DELETE FROM _snapshot_tables WHERE table_name = $1', [part.table]);
      await this.c.run('INSERT INTO _snapshot_tables VALUES ($1, 0, false, $2, $3, $4, $5, $6)', [
        part.table,
        storage,
        seq,
        part.point,
        part.time,
        group.schemaVersion,
      ]);
      await this.updateView();
    }
    const n = group.rows.length;
    const { writer } = this.snapshotWriter;
    writer.append(group.rows, [consecutiveSeqBytes(seq + 1n, n)]);
    this.snapshotWriter.rows += n;
    if (writer.full) await writer.flush();
    // The table's batches commit together with its last one: only that one needs recording.
    if (part.done)
      await this.c.run('UPDATE _snapshot_tables SET rows = $2, done = true WHERE table_name = $1', [
        part.table,
        this.snapshotWriter.rows,
      ]);
  }

  /** Records a table's snapshot with no rows (a source without snapshots). */
  async emptySnapshot(part: SnapshotPart, schemaVersion: number, seq: bigint): Promise<void> {
    const schema = this.schemaOf(part.table, schemaVersion);
    if (!schema) throw new Error(`the snapshot of ${part.table} arrived before its schema`);
    const storage = snapshotStorageName(part.table);
    (await TypedTableWriter.create(this.c, storage, snapshotLayout(schema.columns), 'appender')).close();
    await this.c.run('DELETE FROM _snapshot_tables WHERE table_name = $1', [part.table]);
    await this.c.run('INSERT INTO _snapshot_tables VALUES ($1, 0, true, $2, $3, $4, $5, $6)', [
      part.table,
      storage,
      seq,
      part.point,
      part.time,
      schemaVersion,
    ]);
    await this.updateView();
  }

  /**
   * Appends a group of stream rows (or the rows of a table read again) to its table version's typed
   * storage (created, and added to `change_log`, with the version's first rows), each numbered by
   * its index in the batch after `seqBase`.
   */
  async appendGroup(group: RowGroup, seqBase: bigint): Promise<void> {
    const key = `${group.table}#${group.schemaVersion}`;
    let writer = this.streamWriters.get(key);
    if (!writer) {
      const schema = this.schemaOf(group.table, group.schemaVersion);
      if (!schema)
        throw new Error(`stream rows of ${group.table} arrived before its schema (version ${group.schemaVersion})`);
      const layout = streamLayout(schema.columns);
      let table = this.streamTables.get(key);
      if (table) writer = await TypedTableWriter.open(this.c, table.storage, layout, 'staged');
      else {
        table = { table: group.table, storage: streamStorageName(group.table, group.schemaVersion), schema };
        writer = await TypedTableWriter.create(this.c, table.storage, layout, 'staged');
        await this.c.run('INSERT INTO _stream_tables VALUES ($1, $2, $3)', [
          table.table,
          group.schemaVersion,
          table.storage,
        ]);
        this.streamTables.set(key, table);
        await this.updateView();
      }
      this.streamWriters.set(key, writer);
    }
    const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    writer.append(group.rows, [
      positionedSeqBytes(seqBase, group.indexes),
      group.ops,
      bytes(group.positions),
      bytes(group.commitPositions),
      bytes(group.commitTimes),
      bytes(group.xids),
    ]);
    if (writer.full) await writer.flush();
  }

  /**
   * Inserts what every writer holds into the open transaction, one table after the other (each
   * insert fills its data chunks on this thread, between which the event loop runs).
   */
  async flush(keepThreadFree = true): Promise<void> {
    await this.snapshotWriter?.writer.flush();
    for (const writer of this.streamWriters.values()) await writer.flush(keepThreadFree);
  }

  /** Flushes the snapshot table's writer, if one is open, and closes it (before a commit or the next table). */
  async endSnapshotTable(): Promise<void> {
    if (!this.snapshotWriter) return;
    await this.snapshotWriter.writer.flush();
    this.snapshotWriter.writer.close();
    this.snapshotWriter = undefined;
  }

  /** Drops what the writers hold (a rolled-back transaction) and closes them. */
  discard(): void {
    this.snapshotWriter?.writer.discard();
    this.snapshotWriter = undefined;
    this.release();
  }

  /** Closes the stream tables' writers, dropping anything they hold. */
  release(): void {
    for (const writer of this.streamWriters.values()) writer.discard();
    this.streamWriters.clear();
  }

  /** Drops every typed table (a new snapshot), inside the open transaction. */
  async dropAll(): Promise<void> {
    this.release();
    for (const t of await this.snapshots()) await this.c.run(`DROP TABLE IF EXISTS ${quoteIdent(t.storage)}`);
    for (const t of this.streams) await this.c.run(`DROP TABLE IF EXISTS ${quoteIdent(t.storage)}`);
    this.streamTables.clear();
  }
}
