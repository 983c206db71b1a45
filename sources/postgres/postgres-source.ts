import pg from 'pg';
import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../../framework/config';
import { FeatureflowError } from '../../framework/errors';
import type { FollowOptions, PrepareResult, SlotStatus, SnapshotPoint, Source } from '../../framework/interfaces';
import { TOKENS } from '../../framework/tokens';
import { formatLsn, parseLsn, type ChangeBatch, type Lsn, type TableSchema } from '../../framework/types';
import { PgTypeResolver } from './pg-binary';
import { checkServer, ensurePublication, readTableSchemas, type CatalogQuery } from './pg-catalog';
import { clientConfig, connectClient, describeServer, quoteIdent, sqlState } from './pg-connection';
import { PgoutputStream } from './pgoutput-stream';
import { readSnapshot } from './snapshot-reader';

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

  async prepare(): Promise<PrepareResult> {
    return this.withCatalog(async (client) => {
      await checkServer(client, this.where, this.settings.source.slot);
      this.schemas = await readTableSchemas(client, this.settings.source.tables, this.resolver, this.where);
      await ensurePublication(client, this.settings.source.publication, this.settings.source.tables, this.where);
      const { rows } = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [this.settings.source.slot]);
      return { tables: this.schemas, slotExists: rows.length > 0 };
    });
  }

  async beginSnapshot(options: { readonly temporary?: boolean } = {}): Promise<SnapshotPoint> {
    const client = await this.catalog();
    const slot = this.settings.source.slot;
    if (!options.temporary) await this.dropSlot(client, slot);
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

  async teardown(): Promise<{ slotDropped: boolean; publicationDropped: boolean }> {
    const client = await this.catalog();
    const slotDropped = await this.dropSlot(client, this.settings.source.slot);
    const { rowCount } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [this.settings.source.publication]);
    if (rowCount) await client.query(`DROP PUBLICATION ${quoteIdent(this.settings.source.publication)}`);
    return { slotDropped, publicationDropped: Boolean(rowCount) };
  }

  private async dropSlot(client: pg.Client, slot: string): Promise<boolean> {
    let rows: { active_pid: number | null }[] = [];
    // A walsender whose client died may hold the slot for a moment after the socket closed.
    for (let attempt = 0; attempt < 50; attempt++) {
      ({ rows } = await client.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]));
      if (rows.length === 0 || rows[0]!.active_pid === null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (rows.length === 0) return false;
    if (rows[0]!.active_pid !== null) {
      throw new FeatureflowError(
        'FF_PG_REPLICATION',
        `replication slot ${slot} on ${this.where} is in use by another process (pid ${rows[0]!.active_pid}); stop the other ` +
          'featureflow ingest, or configure another source.slot',
      );
    }
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    return true;
  }

  async close(): Promise<void> {
    await this.stream?.stop();
    await this.endSnapshot();
    const client = this.catalogClient;
    this.catalogClient = undefined;
    await client?.end().catch(() => undefined);
  }
}
