import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { ColumnRows } from '../../framework/column-rows.js';
import type { Change, ChangeBatch, VersionedSchema } from '../../framework/types.js';
import { CopyBinaryParser } from './copy-binary-parser.js';
import type { Lsn } from './lsn.js';
import { connectClient, quoteIdent, quoteTable } from './pg-connection.js';
import { SnapshotColumnsBuilder } from './snapshot-columns.js';

/** Where and how to read the snapshot. */
export interface SnapshotReadPlan {
  readonly clientConfig: pg.ClientConfig;
  /** Name of the snapshot exported by CREATE_REPLICATION_SLOT. */
  readonly snapshotName: string;
  /** The slot's consistent point: the position stamped on every read. */
  readonly point: Lsn;
  /** The checkpoint the batches carry: `point`, or the log's own for tables read while it follows on. */
  readonly checkpoint: Lsn;
  /** When the snapshot was taken, µs since the Unix epoch. */
  readonly time: bigint;
  readonly tables: readonly VersionedSchema[];
  readonly batchSize: number;
  /**
   * A table read again mid-stream: its first batch starts with a truncate of the table, and the last
   * batch carries the table's new start (`tableStart`).
   */
  readonly reread?: boolean;
}

/**
 * Most bytes of rows (their fields' size in COPY's binary format) in one snapshot batch, whatever the
 * batch size: wide rows make smaller batches, so that fewer bytes are held at once between the
 * socket, the store and the feature views. The snapshot of 300k 784-byte images (bench/images.ts,
 * ~1300-row batches): peak RSS 442–452 MB against 480–517 MB in 8192-row batches, the change log
 * alone 2.3 s against 2.6–2.9 s (medians of three), with the digits view as fast; rows of up to ~120
 * bytes still make 8192-row batches (the 1M-row mixed snapshot: 0.51× COPY, 343 MB, as before).
 */
const SNAPSHOT_BATCH_BYTES = 1024 * 1024;

/**
 * Reads each table inside the exported snapshot (repeatable read + SET TRANSACTION SNAPSHOT) with
 * `COPY … TO STDOUT (FORMAT binary)`, framed as it streams into column-wise batches of at most
 * `batchSize` rows and about {@link SNAPSHOT_BATCH_BYTES} (one group of reads each), yielded while
 * the socket waits, so memory does not grow with the table. Only a table's last batch is `complete`.
 */
export async function* readSnapshot(plan: SnapshotReadPlan): AsyncGenerator<ChangeBatch> {
  for (const schema of plan.tables) {
    const client = await connectClient(plan.clientConfig);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${plan.snapshotName.replaceAll("'", "''")}'`);
      const { rows: encoding } = await client.query<{ server_encoding: string }>('SHOW server_encoding');
      const columns = schema.columns.map((c) => quoteIdent(c.name)).join(', ');
      const { rows: kind } = await client.query('SELECT relkind FROM pg_class WHERE oid = $1::regclass', [
        quoteTable(schema.table),
      ]);
      // A partitioned table has no rows of its own and COPY refuses it; its partitions' rows are read
      // through a query (the stream reports them under the parent: publish_via_partition_root).
      const source =
        kind[0]?.relkind === 'p'
          ? `(SELECT ${columns} FROM ${quoteTable(schema.table)})`
          : `${quoteTable(schema.table)} (${columns})`;

      const ready: ColumnRows[] = [];
      const builder = new SnapshotColumnsBuilder(schema.columns, plan.batchSize, {
        utf8Server: encoding[0]?.server_encoding === 'UTF8',
        maxBytes: SNAPSHOT_BATCH_BYTES,
        onFull: () => ready.push(builder.take()),
      });
      const parser = new CopyBinaryParser(builder, schema.columns.length);
      let first = true;
      // A table's batches form one store transaction, committed with its last batch: an interrupted
      // snapshot is taken again from the start anyway, and one commit per table spares the store a
      // WAL write and checkpoint per batch.
      const batch = (rows: ColumnRows, done: boolean): ChangeBatch => {
        const out = snapshotBatch(plan, schema, rows, { first, done });
        first = false;
        return out;
      };
      const stream = client.query(copyTo(`COPY ${source} TO STDOUT (FORMAT binary)`));
      for await (const chunk of stream) {
        parser.push(chunk as Buffer);
        while (ready.length > 0) yield batch(ready.shift()!, false);
      }
      parser.end();
      await client.query('COMMIT');
      yield batch(builder.take(), true);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * One batch of a table's snapshot: its rows as one group of reads (`r`) at the snapshot's point,
 * after (in a table read again, in its first batch) a truncate that ends the table's earlier rows.
 */
function snapshotBatch(
  plan: SnapshotReadPlan,
  schema: VersionedSchema,
  rows: ColumnRows,
  at: { first: boolean; done: boolean },
): ChangeBatch {
  const reread = plan.reread ?? false;
  const changes: Change[] =
    reread && at.first
      ? [
          {
            table: schema.table,
            op: 't',
            key: null,
            before: null,
            after: null,
            position: plan.point,
            commitPosition: plan.point,
            commitTime: plan.time,
            xid: 0,
            schemaVersion: schema.version,
          },
        ]
      : [];
  const n = rows.length;
  const indexes = new Int32Array(n);
  for (let i = 0; i < n; i++) indexes[i] = changes.length + i;
  return {
    groups: [
      {
        table: schema.table,
        schemaVersion: schema.version,
        rows,
        indexes,
        ops: new Uint8Array(n).fill(READ),
        positions: new BigUint64Array(n).fill(plan.point),
        commitPositions: new BigUint64Array(n).fill(plan.point),
        commitTimes: new BigInt64Array(n).fill(plan.time),
        xids: new Uint32Array(n * 2),
      },
    ],
    changes,
    changeIndexes: changes.map(() => 0),
    size: changes.length + n,
    complete: at.done,
    checkpoint: plan.checkpoint,
    schemas: at.first ? [schema] : [],
    snapshot: { table: schema.table, done: at.done, point: plan.point, time: plan.time, reread },
    ...(reread && at.done ? { tableStart: { table: schema.table, position: plan.point } } : {}),
  };
}

const READ = 'r'.charCodeAt(0);
