import type { DuckDBConnection } from '@duckdb/node-api';
import type { Materialized } from '../../framework/features/materialize.js';
import type {
  ApplyOptions,
  ChangeLog,
  ChangeLogState,
  ChangeLogTableStats,
  SourceRecord,
} from '../../framework/interfaces/index.js';
import type { Change, ChangeBatch, ColumnSchema, Row, VersionedSchema } from '../../framework/types.js';
import { ChangesAppender } from './change-log/changes-appender.js';
import { lastRows } from './change-log/last-rows.js';
import { loggedChanges } from './change-log/logged-changes.js';
import {
  checkLayout,
  CURRENT_ROWS_MACRO,
  DDL,
  decodePublished,
  encodePublished,
  hasColumn,
  hasTable,
  migrate,
} from './change-log/log-schema.js';
import { streamMetaColumn } from './change-log/typed-layout.js';
import { TypedStorage } from './change-log/typed-storage.js';
import { openDuckDB, quoteIdent, quoteLiteral, type DuckDBDatabase, type OpenOptions } from './duckdb-database.js';
import type { HistoryTables } from './offline/history-tables.js';
import { yieldToEventLoop } from '../../framework/linger.js';

/**
 * The durable change log in a DuckDB file: the initial snapshot in typed tables, the stream's
 * column-wise rows in typed tables per schema version, every other change in `_changes` as JSON, all
 * bulk-written through data-chunk appenders and read through the view `change_log`; `_schemas` and
 * `_checkpoint`. With feature views, their history tables too ({@link HistoryTables}). A complete
 * batch, its feature rows and the checkpoint commit in one DuckDB transaction: exactly once.
 */
export class DuckDBChangeLog implements ChangeLog {
  private db: DuckDBDatabase | undefined;
  /** Connections handed out by {@link openConnection}: closed with the log. */
  private readonly handedOut = new Set<DuckDBConnection>();
  private changes: ChangesAppender | undefined;
  /**
   * The publishers' positions as `_checkpoint.published` holds them once the open transaction (if
   * any) commits: the checkpoint's UPDATE writes them all, so a commit touches one row of one table.
   */
  private publishedPositions = new Map<string, bigint>();
  /** {@link publishedPositions} when the open transaction began, restored by a rollback. */
  private publishedAtBegin = new Map<string, bigint>();
  /**
   * The source's own progress (e.g. Kafka offsets, each record holding all of them) of the open
   * transaction's newest complete batch, written by the checkpoint's UPDATE at its commit.
   */
  private pendingSource: string | undefined;
  private storage: TypedStorage | undefined;
  private inTransaction = false;
  private seq = 0n;
  /** `seq` when the open transaction began, restored by a rollback. */
  private seqAtBegin = 0n;
  private readonly schemaCache = new Map<string, VersionedSchema>();
  private readonly keyColumns = new Map<string, readonly string[]>();

  /** `readOnly` opens the file for reading only (no DDL, no appender, no feature history): for `status`. */
  constructor(
    private readonly path: string,
    private readonly options: OpenOptions = {},
    private readonly history?: HistoryTables,
  ) {}

  /** The DuckDB connection (for readers in the same process); after {@link open}. */
  get connection(): DuckDBConnection {
    if (!this.db) throw new Error('the change log is not open; call open() first');
    return this.db.connection;
  }

  /**
   * A new connection to the log's DuckDB instance, with transactions of its own (readers that must
   * not see the log's open transaction, the prediction sink); after {@link open}; the caller closes it.
   */
  async openConnection(): Promise<DuckDBConnection> {
    if (!this.db) throw new Error('the change log is not open; call open() first');
    const connection = await this.db.connect();
    this.handedOut.add(connection);
    const closeSync = connection.closeSync.bind(connection);
    connection.closeSync = () => {
      this.handedOut.delete(connection);
      closeSync();
    };
    return connection;
  }

  async open(): Promise<void> {
    if (this.db) return;
    this.db = await openDuckDB(this.path, { ...this.options, compression: this.options.compression ?? 'fast' });
    const c = this.db.connection;
    this.storage = new TypedStorage(c, (t, v) => this.schemaCache.get(`${t}#${v}`));
    try {
      await checkLayout(c, this.path);
      if (!this.options.readOnly) {
        await c.run(DDL);
        await migrate(c, await this.schemas());
        this.publishedPositions = await this.readPublished();
      }
      for (const schema of await this.schemas()) this.remember(schema);
      await this.storage.load();
      if (this.options.readOnly) return;
      this.seq = await this.lastSeq();
      await this.storage.updateView();
      // After change_log: DuckDB binds a macro's tables when it is created.
      await c.run(CURRENT_ROWS_MACRO);
      this.changes = await ChangesAppender.create(c, {
        columnsOf: (table, version) => this.schemaCache.get(`${table}#${version}`)?.columns,
        keyColumnsOf: (table) => this.keyColumns.get(table),
      });
      // The feature history checks its definitions (and builds new versions) now, once; a refusal
      // leaves the file closed and untouched.
      await this.history?.open(c, [...this.schemaCache.values()]);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** The highest `seq` of any storage. */
  private async lastSeq(): Promise<bigint> {
    const c = this.connection;
    let seq = BigInt(
      (
        await c.runAndReadAll(
          'SELECT greatest((SELECT coalesce(max(seq), 0) FROM _changes), (SELECT coalesce(max(seq_base + rows), 0) FROM _snapshot_tables))',
        )
      ).getRows()[0]![0] as bigint,
    );
    for (const t of this.storage!.streams) {
      const max = (
        await c.runAndReadAll(`SELECT max(${streamMetaColumn(t, 'seq')}) FROM ${quoteIdent(t.storage)}`)
      ).getRows()[0]![0];
      if (max !== null && BigInt(max as bigint) > seq) seq = BigInt(max as bigint);
    }
    return seq;
  }

  async state(): Promise<ChangeLogState> {
    const c = this.connection;
    const hasSource = await hasColumn(c, '_checkpoint', 'source');
    const rows = (
      await c.runAndReadAll(`SELECT slot, tables, lsn, ${hasSource ? 'source' : 'NULL'} FROM _checkpoint WHERE id = 1`)
    ).getRows();
    const empty = {
      checkpoint: null,
      snapshotDone: false,
      tables: null,
      sourceRecord: null,
      lastCommitTime: null,
      tableStarts: new Map(),
      rereads: [],
    };
    if (rows.length === 0) return empty;
    const [slot, tables, lsn, source] = rows[0]! as [string | null, string | null, bigint | null, string | null];
    // A log written before sources recorded what they created holds the slot it followed.
    const sourceRecord = source !== null ? (JSON.parse(source) as SourceRecord) : slot !== null ? { slot } : null;
    if (tables === null) return { ...empty, sourceRecord };
    const tableList = JSON.parse(tables) as string[];
    const done = (await c.runAndReadAll('SELECT table_name, lsn FROM _snapshot_tables WHERE done')).getRows() as [
      string,
      bigint,
    ][];
    // Tables read again mid-stream start later than their snapshot (files from before have no such table).
    const starts = (await hasTable(c, '_table_starts'))
      ? ((await c.runAndReadAll('SELECT table_name, lsn FROM _table_starts ORDER BY table_name')).getRows() as [
          string,
          bigint | null,
        ][])
      : [];
    const laterStarts = starts.filter(([, start]) => start !== null) as [string, bigint][];
    // The newest commit time of every storage: `_changes`, snapshots, and each stream table.
    const streamTimes = this.storage!.streams.map(
      (t) => `(SELECT epoch_us(max(${streamMetaColumn(t, 'commit_time')})) FROM ${quoteIdent(t.storage)})`,
    );
    const last = (
      await c.runAndReadAll(
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

  async reset(args: { readonly tables: readonly string[]; readonly point: bigint }): Promise<void> {
    await this.rollback();
    const c = this.connection;
    const { sourceRecord } = await this.state();
    await c.run('BEGIN');
    try {
      await this.storage!.dropAll();
      await c.run(
        'DELETE FROM _changes; DELETE FROM _schemas; DELETE FROM _snapshot_tables; DELETE FROM _stream_tables; DELETE FROM _table_starts; DELETE FROM _checkpoint;',
      );
      await this.storage!.updateView();
      await c.run(
        'INSERT INTO _checkpoint (id, tables, lsn, snapshot_lsn, updated_at, source, published) VALUES (1, $1, NULL, $2, now(), $3, $4)',
        [
          JSON.stringify(args.tables),
          args.point,
          sourceRecord === null ? null : JSON.stringify(sourceRecord),
          // What publishers sent stays recorded, as it did in a table of its own.
          this.publishedPositions.size === 0 ? null : encodePublished(this.publishedPositions),
        ],
      );
      await this.history?.reset(c);
      await c.run('COMMIT');
    } catch (error) {
      await c.run('ROLLBACK');
      throw error;
    }
    this.seq = 0n;
    this.schemaCache.clear();
    this.keyColumns.clear();
  }

  async saveSourceRecord(record: SourceRecord): Promise<void> {
    await this.connection.run(
      `INSERT INTO _checkpoint (id, source, updated_at) VALUES (1, $1, now())
         ON CONFLICT (id) DO UPDATE SET source = excluded.source, updated_at = excluded.updated_at`,
      [JSON.stringify(record)],
    );
  }

  async published(publisher: string): Promise<bigint | null> {
    return (await this.readPublished()).get(publisher) ?? null;
  }

  /** The publishers' positions the file holds. */
  private async readPublished(): Promise<Map<string, bigint>> {
    const rows = (await this.connection.runAndReadAll('SELECT published FROM _checkpoint WHERE id = 1')).getRows() as [
      string | null,
    ][];
    return decodePublished(rows[0]?.[0] ?? null);
  }

  async savePublished(publisher: string, position: bigint): Promise<void> {
    const positions = new Map(this.publishedPositions).set(publisher, position);
    await this.connection.run('UPDATE _checkpoint SET published = $1 WHERE id = 1', [encodePublished(positions)]);
    this.publishedPositions = positions;
  }

  async apply(batch: ChangeBatch, features: Materialized, options: ApplyOptions = {}): Promise<void> {
    const c = this.connection;
    const storage = this.storage!;
    if (!this.inTransaction) {
      await c.run('BEGIN');
      this.inTransaction = true;
      this.seqAtBegin = this.seq;
      this.publishedAtBegin = this.publishedPositions;
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
      const base = this.seq;
      const part = batch.snapshot;
      if (part && !part.reread) {
        // A table's initial (or added) snapshot: its reads in its snapshot table.
        if (batch.groups.length === 0) await storage.emptySnapshot(part, batch.schemas[0]?.version ?? 1, base);
        for (const group of batch.groups) await storage.appendSnapshot(part, group, base);
        if (part.done) await this.addTable(part.table);
      } else {
        for (const group of batch.groups) await storage.appendGroup(group, base);
      }
      this.changes!.append(batch.changes, (i) => base + BigInt(batch.changeIndexes[i]! + 1));
      this.seq = base + BigInt(batch.size);
      if (
        this.history &&
        (features.batches.length > 0 || features.deadLetters.length > 0 || batch.schemas.length > 0)
      ) {
        await this.history.apply(c, batch.schemas, features.batches, features.deadLetters);
      }
      if (batch.complete) {
        await storage.endSnapshotTable();
        if (batch.tableStart)
          await c.run('INSERT OR REPLACE INTO _table_starts VALUES ($1, $2)', [
            batch.tableStart.table,
            batch.tableStart.position,
          ]);
        for (const table of Object.keys(batch.rereads ?? {}))
          await c.run('INSERT OR REPLACE INTO _table_starts VALUES ($1, NULL)', [table]);
        // The source's own progress (e.g. Kafka offsets) commits with the checkpoint: exactly once.
        if (batch.sourceRecord) this.pendingSource = JSON.stringify(batch.sourceRecord);
        // Left open, a later complete batch's commit (and checkpoint) makes this one durable with it.
        if (options.commit !== false) {
          // Appended rows wait in the appenders and history writers until here: each flush has a
          // fixed cost, paid once per commit rather than once per batch of a group.
          // Staged (off this thread) only while the process serves meanwhile: else through appenders.
          const keepThreadFree = options.servingMeanwhile ?? false;
          await this.flush(keepThreadFree);
          await this.history?.flush(c, keepThreadFree);
          // Publisher positions and the source's progress go in the checkpoint's row: one UPDATE of one
          // row, the COMMIT in the same round trip, no prepared statement (this ends every batch); a
          // failed UPDATE skips the COMMIT.
          const source = this.pendingSource === undefined ? '' : `, source = ${quoteLiteral(this.pendingSource)}`;
          let published = '';
          if (options.published && options.published.size > 0) {
            const positions = new Map(this.publishedPositions);
            for (const [publisher, position] of options.published) positions.set(publisher, BigInt(position));
            this.publishedPositions = positions;
            published = `, published = ${quoteLiteral(encodePublished(positions))}`;
          }
          await c.run(
            `UPDATE _checkpoint SET lsn = ${BigInt(batch.checkpoint)}, updated_at = now()${published}${source} WHERE id = 1; COMMIT`,
          );
          this.pendingSource = undefined;
          this.inTransaction = false;
          this.history?.committed();
        }
      }
    } catch (error) {
      await this.rollback();
      throw error;
    }
  }

  /** A table added to a running log joins the log's tables with its snapshot's last batch. */
  private async addTable(table: string): Promise<void> {
    const c = this.connection;
    const tables = JSON.parse(
      (await c.runAndReadAll('SELECT tables FROM _checkpoint WHERE id = 1')).getRows()[0]![0] as string,
    ) as string[];
    if (!tables.includes(table))
      await c.run('UPDATE _checkpoint SET tables = $1 WHERE id = 1', [JSON.stringify([...tables, table])]);
  }

  /** Inserts what the appender and the typed tables' writers hold into the open transaction. */
  private async flush(keepThreadFree = true): Promise<void> {
    this.changes?.flush();
    if (keepThreadFree) await yieldToEventLoop();
    await this.storage?.flush(keepThreadFree);
  }

  private remember(schema: VersionedSchema): void {
    const known = this.schemaCache.get(`${schema.table}#${schema.version}`);
    if (!known) this.schemaCache.set(`${schema.table}#${schema.version}`, schema);
    this.keyColumns.set(schema.table, schema.keyColumns);
  }

  async rollback(): Promise<void> {
    if (!this.inTransaction) return;
    this.inTransaction = false;
    this.storage!.discard();
    this.changes?.discard();
    await this.connection.run('ROLLBACK');
    this.publishedPositions = this.publishedAtBegin;
    this.pendingSource = undefined;
    this.seq = this.seqAtBegin;
    // Stream tables and history tables created in the rolled-back transaction are gone.
    await this.storage!.load();
    this.history?.rolledBack();
  }

  async release(): Promise<void> {
    this.storage?.release();
    await this.history?.release(this.connection);
  }

  async lastRows(table: string, keys: readonly Row[]): Promise<(Row | null)[]> {
    await this.flush();
    const keyColumns = this.keyColumns.get(table) ?? (keys[0] ? Object.keys(keys[0]) : []);
    const columnsOf = (version: number): readonly ColumnSchema[] =>
      this.schemaCache.get(`${table}#${version}`)?.columns ?? [];
    return lastRows(this.connection, this.storage!, table, keyColumns, columnsOf, keys);
  }

  changesAfter(position: bigint, tables: readonly string[]): AsyncIterable<readonly Change[]> {
    const columnsOf = (table: string, version: number) => this.schemaCache.get(`${table}#${version}`)?.columns ?? [];
    return loggedChanges(this.connection, { tables, committedAfter: position, columnsOf });
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

  async schemas(): Promise<VersionedSchema[]> {
    const rows = (
      await this.connection.runAndReadAll(
        'SELECT table_name, version, columns, key_columns FROM _schemas ORDER BY table_name, version',
      )
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
    this.storage?.release();
    await this.history?.release(this.connection);
    this.changes?.close();
    this.changes = undefined;
    // A connection left open keeps DuckDB's database (its file and WAL) alive after the instance is
    // closed, until the garbage collector finds it: the file opened again in this process would then
    // be held by two databases at once (seen as 'Current transaction is aborted' on opening it).
    for (const connection of this.handedOut) connection.closeSync();
    this.handedOut.clear();
    this.db.close();
    this.db = undefined;
  }
}
