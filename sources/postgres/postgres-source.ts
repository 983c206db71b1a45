import type pg from 'pg';
import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../../framework/config.js';
import { FeatureflowError } from '../../framework/errors.js';
import type {
  FollowOptions,
  PrepareOptions,
  PrepareResult,
  SnapshotPlan,
  SnapshotSession,
  Source,
  SourceRecord,
  SourceStatus,
  TeardownResult,
} from '../../framework/interfaces/index.js';
import { TOKENS } from '../../framework/tokens.js';
import { POSTGRES_CONFIG, type ResolvedPostgresConfig } from './postgres-config.js';
import type { ChangeBatch, TableSchema } from '../../framework/types.js';
import { parseLsn, type Lsn } from './lsn.js';
import { PgTypeResolver } from './pg-types.js';
import { checkServer, readTableSchemas, type CatalogQuery } from './pg-catalog.js';
import { checkPublication, checkSlot, claimOf, dropOwnSlot, readSlot, type PostgresClaim } from './pg-ownership.js';
import { clientConfig, connectClient, describeServer, quoteIdent, quoteTable, sqlState } from './pg-connection.js';
import { PgoutputStream } from './pgoutput-stream.js';
import { translatePgError } from './postgres-errors.js';
import { openPostgresSnapshot } from './postgres-snapshot.js';

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
  private schemas: TableSchema[] = [];
  private stream: PgoutputStream | undefined;
  private knownSchemas = new Map<string, TableSchema & { version: number }>();

  constructor(
    @inject(POSTGRES_CONFIG) private readonly settings: ResolvedPostgresConfig,
    @inject(TOKENS.Config) private readonly framework: ResolvedConfig,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.config = clientConfig(settings.connectionString);
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
        throw new FeatureflowError(
          'FF_PG_UNREACHABLE',
          `lost the connection to PostgreSQL at ${this.where}; retrying`,
          { cause: error },
        );
      }
      throw translatePgError(error, this.where);
    }
  }

  private readonly query: CatalogQuery = (sql, params) => this.withCatalog((client) => client.query(sql, params));

  async prepare(options: PrepareOptions): Promise<PrepareResult> {
    const { slot, publication, tables } = this.settings;
    return this.withCatalog(async (client) => {
      await checkServer(client, this.where, slot);
      this.schemas = await readTableSchemas(client, tables, this.resolver, this.where);
      const claim = claimOf(options.record, publication);
      const { rows } = await client.query('SELECT current_database() AS db, pg_current_wal_insert_lsn()::text AS now');
      const row = await readSlot(client, slot);
      // The slot first: a log that may not resume changes nothing, the publication included.
      if (row) checkSlot({ slot, row, claim, database: rows[0].db, checkpoint: options.checkpoint, where: this.where });
      else if (options.mustResume) {
        throw new FeatureflowError(
          'FF_PG_SLOT_LOST',
          `replication slot ${slot} on ${this.where} disappeared while following; changes since the checkpoint ` +
            'may be gone from the WAL. Run `featureflow ingest` again to take a new snapshot',
        );
      }
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
      return { tables: this.schemas, resumable: row !== null, record };
    });
  }

  /** The configured tables that are partitioned (published under their own name only with publish_via_partition_root). */
  private async partitionedTables(client: pg.Client): Promise<string[]> {
    const { rows } = await client.query(
      `SELECT t FROM unnest($1::text[]) t JOIN pg_class c ON c.oid = to_regclass(t) WHERE c.relkind = 'p'`,
      [this.settings.tables.map((t) => quoteTable(t))],
    );
    return rows.map((r: { t: string }) => r.t);
  }

  async openSnapshot(plan: SnapshotPlan = {}): Promise<SnapshotSession> {
    const client = await this.catalog();
    const { slot, tables: configured } = this.settings;
    const { partial } = plan;
    const tables = plan.tables ?? configured;
    const reread = partial?.reread;
    // prepare() checked that a slot of this name is the log's own; a new log's snapshot recreates it.
    if (!partial)
      await dropOwnSlot(client, slot, this.where).catch((e: unknown) =>
        Promise.reject(translatePgError(e, this.where)),
      );
    return openPostgresSnapshot({
      clientConfig: this.config,
      slot,
      catalog: client,
      // A table read again has changed shape since prepare(): its schema comes from the catalog anew.
      tables: async () => {
        const schemas = reread
          ? await this.withCatalog((c) => readTableSchemas(c, tables, this.resolver, this.where))
          : this.schemas;
        return schemas.filter((s) => tables.includes(s.table)).map((s) => ({ ...s, version: reread?.version ?? 1 }));
      },
      batchSize: this.framework.ingest.snapshotBatchSize,
      ...(partial ? { partial: { checkpoint: partial.checkpoint, reread: reread !== undefined } } : {}),
      logger: this.logger,
    });
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
        slot: this.settings.slot,
        publication: this.settings.publication,
        tables: new Set(this.settings.tables),
        batchSize: this.framework.ingest.batchSize,
        heartbeatMs: this.framework.ingest.heartbeatSeconds * 1000,
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
    } catch (error) {
      throw translatePgError(error, this.where);
    } finally {
      this.stream = undefined;
      await stream.stop();
    }
  }

  /** The server's wal_sender_timeout in ms (0 disables it). */
  private async walSenderTimeoutMs(): Promise<number> {
    const { rows } = await this.query(
      `SELECT setting::int AS ms FROM pg_settings WHERE name = 'wal_sender_timeout'`,
      [],
    );
    return Number(rows[0]?.ms ?? 60_000);
  }

  confirm(lsn: Lsn): void {
    this.stream?.confirm(lsn);
  }

  async currentPosition(): Promise<Lsn> {
    const { rows } = await this.withCatalog((client) =>
      client.query('SELECT pg_current_wal_insert_lsn()::text AS lsn'),
    );
    return parseLsn(rows[0].lsn);
  }

  async status(_record: SourceRecord | null): Promise<SourceStatus> {
    const client = await this.catalog();
    const { slot, publication } = this.settings;
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
      confirmed: r.confirmed ? parseLsn(r.confirmed) : null,
      head: parseLsn(r.current),
      lag: r.lag === null ? null : Number(r.lag.split('.')[0]),
      lagUnit: 'bytes of WAL',
      holds: {
        [`slot ${slot}`]: r.exists ? (r.active ? 'active' : 'inactive') : 'missing',
        [`publication ${publication}`]: r.pub ? 'exists' : 'missing',
      },
    };
  }

  async teardown(record: SourceRecord | null): Promise<TeardownResult> {
    const client = await this.catalog();
    const { slot, publication } = this.settings;
    const claim = claimOf(record, publication);
    const dropped: string[] = [];
    const leftAlone: string[] = [];
    const row = await readSlot(client, slot);
    if (row) {
      const { rows } = await client.query('SELECT current_database() AS db');
      try {
        checkSlot({ slot, row, claim, database: rows[0].db, checkpoint: null, where: this.where });
        if (await dropOwnSlot(client, slot, this.where)) dropped.push(`slot ${slot}`);
      } catch (error) {
        if (!(error instanceof FeatureflowError && error.code === 'FF_PG_SLOT_FOREIGN')) throw error;
        leftAlone.push(`slot ${slot}`);
      }
    }
    const { rowCount } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
    if (rowCount && claim?.publication === publication && claim.publicationOwned) {
      await client.query(`DROP PUBLICATION ${quoteIdent(publication)}`);
      dropped.push(`publication ${publication}`);
    } else if (rowCount) leftAlone.push(`publication ${publication}`);
    return { dropped, leftAlone };
  }

  async close(): Promise<void> {
    await this.stream?.stop();
    const client = this.catalogClient;
    this.catalogClient = undefined;
    await client?.end().catch(() => undefined);
  }
}
