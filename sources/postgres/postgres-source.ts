import pg from 'pg';
import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../../framework/config.js';
import { FeatureflowError } from '../../framework/errors.js';
import type { FollowOptions, PrepareOptions, PrepareResult, SlotStatus, SnapshotPoint, Source, SourceRecord } from '../../framework/interfaces/index.js';
import { TOKENS } from '../../framework/tokens.js';
import { formatLsn, parseLsn, type ChangeBatch, type Lsn, type TableSchema } from '../../framework/types.js';
import { PgTypeResolver } from './pg-binary.js';
import { checkServer, readTableSchemas, type CatalogQuery } from './pg-catalog.js';
import { checkPublication, checkSlot, claimOf, dropOwnSlot, readSlot, type PostgresClaim } from './pg-ownership.js';
import { clientConfig, connectClient, describeServer, quoteIdent, quoteTable, sqlState } from './pg-connection.js';
import { PgoutputStream } from './pgoutput-stream.js';
import { readSnapshot } from './snapshot-reader.js';

/**
 * PostgreSQL as a change source: a publication for the configured tables, one pgoutput slot, an
 * initial snapshot exported by the slot's creation, then the logical replication stream.
 */
@injectable()
export class PostgresSource implements Source {
  private readonly config: pg.ClientConfig;
  private readonly where: string;
  private readonly resolver = new PgTypeResolver();
  private catalogClient: pg.Client | undefined;
  private replication: pg.Client | undefined;
  private exported: { name: string; lsn: Lsn; time: bigint } | undefined;
  private schemas: TableSchema[] = [];
  private stream: PgoutputStream | undefined;
  private knownSchemas = new Map<string, TableSchema & { version: number }>();

  constructor(
    @inject(TOKENS.Config) private readonly settings: ResolvedConfig,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.config = clientConfig(settings.source.connectionString);
    this.where = describeServer(this.config);
  }


  private async catalog(): Promise<pg.Client> {
    if (!this.catalogClient) {
      const client = await connectClient(this.config);
      // After a server restart the old client is dead: forget it so the next call reconnects.
      const forget = () => {
        if (this.catalogClient === client) this.catalogClient = undefined;
      };
      client.on('error', forget);
      client.on('end', forget);
      this.catalogClient = client;
    }
    return this.catalogClient;
  }

  /**
   * Runs `fn` on the catalog connection. A query cut off because the server went away fails with a
   * plain Error without a SQLSTATE; once the client is known dead, that becomes the retriable
   * FF_PG_UNREACHABLE, so the engine's backoff covers a server restart.
   */
  private async withCatalog<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.catalog();
    try {
      return await fn(client);
    } catch (error) {
      if (!(error instanceof FeatureflowError) && sqlState(error) === undefined && this.catalogClient !== client) {
        throw new FeatureflowError('FF_PG_UNREACHABLE', `lost the connection to PostgreSQL at ${this.where}; retrying`, { cause: error });
      }
      throw error;
    }
  }

  private readonly query: CatalogQuery = (sql, params) => this.withCatalog((client) => client.query(sql, params));

  async prepare(options: PrepareOptions): Promise<PrepareResult> {
    const { slot, publication, tables } = this.settings.source;
    return this.withCatalog(async (client) => {
      await checkServer(client, this.where, slot);
      this.schemas = await readTableSchemas(client, tables, this.resolver, this.where);
      const claim = claimOf(options.record, publication);
      const { rows } = await client.query('SELECT current_database() AS db, pg_current_wal_insert_lsn()::text AS now');
      const row = await readSlot(client, slot);
      // The slot first: a log that may not resume changes nothing, the publication included.
      if (row) checkSlot({ slot, row, claim, database: rows[0].db, checkpoint: options.checkpoint, where: this.where });
      const partitioned = await this.partitionedTables(client);
      const owned = await checkPublication(client, {
        publication,
        tables,
        owned: claim?.publication === publication && claim.publicationOwned,
        partitioned,
        where: this.where,
      });
      const record: PostgresClaim = {
        kind: 'postgres',
        slot,
        // A slot created from here on sits at or after the WAL position of now.
        slotCreatedAfter: row && claim ? claim.slotCreatedAfter : rows[0].now,
        publication,
        publicationOwned: owned,
      };
      return { tables: this.schemas, slotExists: row !== null, record };
    });
  }

  /** The configured tables that are partitioned (published under their own name only with publish_via_partition_root). */
  private async partitionedTables(client: pg.Client): Promise<string[]> {
    const { rows } = await client.query(
      `SELECT t FROM unnest($1::text[]) t JOIN pg_class c ON c.oid = to_regclass(t) WHERE c.relkind = 'p'`,
      [this.settings.source.tables.map((t) => quoteTable(t))],
    );
    return rows.map((r: { t: string }) => r.t);
  }

  async beginSnapshot(options: { readonly temporary?: boolean } = {}): Promise<SnapshotPoint> {
    const client = await this.catalog();
    const slot = this.settings.source.slot;
    // prepare() checked that a slot of this name is the log's own.
    if (!options.temporary) await dropOwnSlot(client, slot, this.where);
    const replication = await connectClient({ ...this.config, replication: 'database' } as pg.ClientConfig);
    this.replication = replication;
    try {
      // The exported snapshot lives as long as this connection stays open and idle. Tables added to a
      // running log, or read again, are read in the snapshot of a temporary slot (dropped with the
      // connection): the stream of the log's own slot then skips their changes committed before its
      // consistent point.
      const create = options.temporary
        ? `CREATE_REPLICATION_SLOT ${quoteIdent(`${slot.slice(0, 57)}_added`)} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT`
        : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`;
      const { rows } = await replication.query(create);
      const { rows: now } = await client.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS micros`);
      this.exported = { name: rows[0].snapshot_name, lsn: parseLsn(rows[0].consistent_point), time: BigInt(now[0].micros) };
    } catch (error) {
      await this.endSnapshot();
      throw error;
    }
    this.logger.info({ slot, lsn: formatLsn(this.exported.lsn) }, 'replication slot created with an exported snapshot');
    return { lsn: this.exported.lsn };
  }

  async *snapshot(
    options: { readonly changes?: boolean; readonly tables?: readonly string[]; readonly checkpoint?: Lsn; readonly reread?: { readonly version: number } } = {},
  ): AsyncGenerator<ChangeBatch> {
    if (!this.exported) throw new Error('snapshot() needs beginSnapshot() first');
    const { tables, reread } = options;
    // A table read again has changed shape since prepare(): its schema comes from the catalog anew.
    const schemas = reread && tables ? await this.withCatalog((client) => readTableSchemas(client, tables, this.resolver, this.where)) : this.schemas;
    yield* readSnapshot({
      clientConfig: this.config,
      snapshotName: this.exported.name,
      lsn: this.exported.lsn,
      checkpoint: options.checkpoint ?? this.exported.lsn,
      time: this.exported.time,
      tables: schemas.filter((s) => !tables || tables.includes(s.table)).map((s) => ({ ...s, version: reread?.version ?? 1 })),
      reread: reread !== undefined,
      batchSize: this.settings.ingest.snapshotBatchSize,
      changes: options.changes ?? false,
    });
  }

  async endSnapshot(): Promise<void> {
    this.exported = undefined;
    const replication = this.replication;
    this.replication = undefined;
    await replication?.end().catch(() => undefined);
  }

  async *follow(from: Lsn, options: FollowOptions = {}): AsyncGenerator<ChangeBatch> {
    if (options.schemas) this.knownSchemas = new Map();
    for (const s of options.schemas ?? []) {
      const prev = this.knownSchemas.get(s.table);
      if (!prev || prev.version < s.version) this.knownSchemas.set(s.table, s);
    }
    const stream = new PgoutputStream(
      {
        clientConfig: this.config,
        slot: this.settings.source.slot,
        publication: this.settings.source.publication,
        tables: new Set(this.settings.source.tables),
        batchSize: this.settings.ingest.batchSize,
        heartbeatMs: this.settings.ingest.heartbeatSeconds * 1000,
        walSenderTimeoutMs: await this.walSenderTimeoutMs(),
        utf8Server: (await this.query('SHOW server_encoding', [])).rows[0]?.server_encoding === 'UTF8',
        resolver: this.resolver,
        catalog: this.query,
        logger: this.logger,
        knownSchemas: this.knownSchemas,
        tableStarts: options.tableStarts ?? new Map(),
      },
      from,
    );
    this.stream = stream;
    try {
      for await (const batch of stream.batches(options)) {
        for (const s of batch.schemas) this.knownSchemas.set(s.table, s);
        yield batch;
      }
    } finally {
      this.stream = undefined;
      await stream.stop();
    }
  }

  /** The server's wal_sender_timeout in ms (0 disables it). */
  private async walSenderTimeoutMs(): Promise<number> {
    const { rows } = await this.query(`SELECT setting::int AS ms FROM pg_settings WHERE name = 'wal_sender_timeout'`, []);
    return Number(rows[0]?.ms ?? 60_000);
  }

  confirm(lsn: Lsn): void {
    this.stream?.confirm(lsn);
  }

  async currentPosition(): Promise<Lsn> {
    const { rows } = await this.withCatalog((client) => client.query('SELECT pg_current_wal_insert_lsn()::text AS lsn'));
    return parseLsn(rows[0].lsn);
  }

  async status(): Promise<SlotStatus> {
    const client = await this.catalog();
    const { slot, publication } = this.settings.source;
    const { rows } = await client.query(
      `SELECT pg_current_wal_lsn()::text AS current,
              s.slot_name IS NOT NULL AS exists, coalesce(s.active, false) AS active,
              s.confirmed_flush_lsn::text AS confirmed,
              (pg_current_wal_lsn() - s.confirmed_flush_lsn)::text AS lag,
              EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $2) AS pub
         FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
      [slot, publication],
    );
    const r = rows[0];
    return {
      slot,
      exists: r.exists,
      active: r.active,
      confirmedFlushLsn: r.confirmed ? parseLsn(r.confirmed) : null,
      currentWalLsn: parseLsn(r.current),
      lagBytes: r.lag === null ? null : BigInt(r.lag.split('.')[0]),
      publication,
      publicationExists: r.pub,
    };
  }

  async teardown(record: SourceRecord | null): Promise<{ slotDropped: boolean; publicationDropped: boolean; notOwned: string[] }> {
    const client = await this.catalog();
    const { slot, publication } = this.settings.source;
    const claim = claimOf(record, publication);
    const notOwned: string[] = [];
    let slotDropped = false;
    const row = await readSlot(client, slot);
    if (row) {
      const { rows } = await client.query('SELECT current_database() AS db');
      try {
        checkSlot({ slot, row, claim, database: rows[0].db, checkpoint: null, where: this.where });
        slotDropped = await dropOwnSlot(client, slot, this.where);
      } catch (error) {
        if (!(error instanceof FeatureflowError && error.code === 'FF_PG_SLOT_FOREIGN')) throw error;
        notOwned.push(`slot ${slot}`);
      }
    }
    const { rowCount } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
    let publicationDropped = false;
    if (rowCount && claim?.publication === publication && claim.publicationOwned) {
      await client.query(`DROP PUBLICATION ${quoteIdent(publication)}`);
      publicationDropped = true;
    } else if (rowCount) notOwned.push(`publication ${publication}`);
    return { slotDropped, publicationDropped, notOwned };
  }

  async close(): Promise<void> {
    await this.stream?.stop();
    await this.endSnapshot();
    const client = this.catalogClient;
    this.catalogClient = undefined;
    await client?.end().catch(() => undefined);
  }
}
