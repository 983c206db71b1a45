import type pg from 'pg';
import type { Logger } from 'pino';
import type { SnapshotSession } from '../../framework/interfaces/index.js';
import type { ChangeBatch, VersionedSchema } from '../../framework/types.js';
import { formatLsn, parseLsn } from './lsn.js';
import { connectClient, describeServer, quoteIdent } from './pg-connection.js';
import { translatePgError } from './postgres-errors.js';
import { readSnapshot } from './snapshot-reader.js';

/** What opening a snapshot needs. */
export interface PostgresSnapshotOptions {
  readonly clientConfig: pg.ClientConfig;
  /** The log's slot; created (exporting the snapshot) unless `partial`. */
  readonly slot: string;
  /** Connection for the clock (the snapshot's time). */
  readonly catalog: pg.Client;
  /** The tables to read, with the schema version their rows are stored under. */
  readonly tables: () => Promise<readonly VersionedSchema[]>;
  readonly batchSize: number;
  /** Tables read while the log follows on: see SnapshotPlan.partial. */
  readonly partial?: { readonly checkpoint: bigint; readonly reread: boolean };
  readonly logger: Logger;
}

/**
 * Opens a snapshot session: a replication connection creates a slot exporting a snapshot (the log's
 * own slot when the log starts; a temporary one for tables read while the log follows on, so the
 * log's slot keeps its place), and each table is read inside that snapshot. The exported snapshot
 * lives as long as the connection stays open and idle; closing the session closes it (a temporary
 * slot goes with it).
 */
export async function openPostgresSnapshot(options: PostgresSnapshotOptions): Promise<SnapshotSession> {
  const { slot, partial } = options;
  const where = describeServer(options.clientConfig);
  const replication = await connectClient({ ...options.clientConfig, replication: 'database' } as pg.ClientConfig);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await replication.end().catch(() => undefined);
  };
  try {
    const create = partial
      ? `CREATE_REPLICATION_SLOT ${quoteIdent(`${slot.slice(0, 57)}_added`)} TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT`
      : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`;
    const { rows } = await replication.query(create);
    const { rows: now } = await options.catalog.query(
      `SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8 AS micros`,
    );
    const point = parseLsn(rows[0].consistent_point);
    const name = rows[0].snapshot_name as string;
    const time = BigInt(now[0].micros);
    if (!partial)
      options.logger.info({ slot, lsn: formatLsn(point) }, 'replication slot created with an exported snapshot');
    let read = false;
    return {
      point,
      async *read(): AsyncGenerator<ChangeBatch> {
        if (read) throw new Error('a snapshot session is read once');
        read = true;
        const reading = readSnapshot({
          clientConfig: options.clientConfig,
          snapshotName: name,
          point,
          checkpoint: partial?.checkpoint ?? point,
          time,
          tables: await options.tables(),
          reread: partial?.reread ?? false,
          batchSize: options.batchSize,
        });
        try {
          yield* reading;
        } catch (error) {
          throw translatePgError(error, where);
        }
      },
      close,
    };
  } catch (error) {
    await close();
    throw translatePgError(error, where);
  }
}
