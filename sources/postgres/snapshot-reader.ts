import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { SnapshotRows } from '../../framework/snapshot-rows.js';
import type { Change, ChangeBatch, Lsn, Row, TableSchema, Value } from '../../framework/types.js';
import { CopyBinaryParser, ValueRowSink, type CopyRowSink } from './copy-binary-parser.js';
import { SnapshotColumnsBuilder } from './snapshot-columns.js';
import { decoderFor } from './pg-binary.js';
import { connectClient, quoteIdent, quoteTable } from './pg-connection.js';

/** Where and how to read the snapshot. */
export interface SnapshotPlan {
  readonly clientConfig: pg.ClientConfig;
  /** Name of the snapshot exported by CREATE_REPLICATION_SLOT. */
  readonly snapshotName: string;
  /** The slot's consistent point: the LSN stamped on every read. */
  readonly lsn: Lsn;
  /** The checkpoint the batches carry: `lsn`, or the log's own for a table added to it later. */
  readonly checkpoint: Lsn;
  /** When the snapshot was taken, µs since the Unix epoch. */
  readonly time: bigint;
  readonly tables: readonly (TableSchema & { version: number })[];
  readonly batchSize: number;
  /** Also hand out every row as an `r` change (for consumers of changes). */
  readonly changes?: boolean;
  /**
   * A table read again mid-stream: its rows go out as stream rows (`ChangeBatch.stored`, op `r`)
   * after a truncate of the table, and the last batch carries the table's new start (`tableStart`).
   */
  readonly reread?: boolean;
}

/**
 * Reads each table inside the exported snapshot (repeatable read + SET TRANSACTION SNAPSHOT) with
 * `COPY … TO STDOUT (FORMAT binary)`, framed as it streams into column-wise batches of at most
 * `batchSize` rows (and, with `plan.changes`, the same rows as `r` changes), yielded while the socket
 * waits, so memory does not grow with the table. Only a table's last batch is `complete`.
 */
export async function* readSnapshot(plan: SnapshotPlan): AsyncGenerator<ChangeBatch> {
  for (const schema of plan.tables) {
    const client = await connectClient(plan.clientConfig);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${plan.snapshotName.replaceAll("'", "''")}'`);
      const { rows: encoding } = await client.query<{ server_encoding: string }>('SHOW server_encoding');
      const names = schema.columns.map((c) => c.name);
      const columns = names.map(quoteIdent).join(', ');
      const { rows: kind } = await client.query('SELECT relkind FROM pg_class WHERE oid = $1::regclass', [quoteTable(schema.table)]);
      // A partitioned table has no rows of its own and COPY refuses it; its partitions' rows are read
      // through a query (the stream reports them under the parent: publish_via_partition_root).
      const source =
        kind[0]?.relkind === 'p' ? `(SELECT ${columns} FROM ${quoteTable(schema.table)})` : `${quoteTable(schema.table)} (${columns})`;

      let changes: Change[] = [];
      const ready: { rows: SnapshotRows; changes: Change[] }[] = [];
      const builder = new SnapshotColumnsBuilder(schema.columns, plan.batchSize, {
        utf8Server: encoding[0]?.server_encoding === 'UTF8',
        onFull: () => {
          ready.push({ rows: builder.take(), changes });
          changes = [];
        },
      });
      let sink: CopyRowSink = builder;
      if (plan.changes) {
        const values = new ValueRowSink(schema.columns.map((c) => decoderFor(c.type, c.array)));
        const keyIdx = schema.keyColumns.map((k) => names.indexOf(k));
        values.onRow = (row: Value[]) => changes.push(readChange(plan, schema, names, keyIdx, row));
        sink = teeSink(values, builder);
      }
      const parser = new CopyBinaryParser(sink, schema.columns.length);
      let first = true;
      // A table's batches form one store transaction, committed with its last batch: an interrupted
      // snapshot is taken again from the start anyway, and one commit per table spares the store a
      // WAL write and checkpoint per batch.
      const batch = (part: { rows: SnapshotRows; changes: Change[] }, done: boolean): ChangeBatch => {
        const common = { complete: done, checkpoint: plan.checkpoint, schemas: first ? [schema] : [] };
        const out: ChangeBatch = plan.reread
          ? { ...common, ...rereadPart(plan, schema, part, first), ...(done ? { tableStart: { table: schema.table, lsn: plan.lsn } } : {}) }
          : {
              ...common,
              changes: part.changes,
              snapshot: { table: schema.table, done, rows: part.rows, schemaVersion: schema.version, lsn: plan.lsn, commitTime: plan.time },
            };
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
      yield batch({ rows: builder.take(), changes }, true);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * Rows of a table read again, as the stream's storage holds them: reads (`r`) at the snapshot's
 * point, after (in the first part) a truncate that ends the table's earlier rows.
 */
function rereadPart(
  plan: SnapshotPlan,
  schema: TableSchema & { version: number },
  part: { rows: SnapshotRows; changes: Change[] },
  first: boolean,
): Pick<ChangeBatch, 'changes' | 'stored'> {
  const at = { lsn: plan.lsn, commitLsn: plan.lsn, commitTime: plan.time, xid: 0 };
  const truncate: Change[] = first ? [{ ...at, table: schema.table, op: 't', key: null, before: null, after: null, schemaVersion: schema.version }] : [];
  const n = part.rows.length;
  const positions = new Int32Array(n);
  for (let i = 0; i < n; i++) positions[i] = truncate.length + i;
  return {
    changes: plan.changes ? [...truncate, ...part.changes] : [],
    stored: {
      size: truncate.length + n,
      groups: [
        {
          table: schema.table,
          schemaVersion: schema.version,
          rows: part.rows,
          positions,
          ops: new Uint8Array(n).fill('r'.charCodeAt(0)),
          lsns: new BigUint64Array(n).fill(plan.lsn),
          commitLsns: new BigUint64Array(n).fill(plan.lsn),
          commitTimes: new BigInt64Array(n).fill(plan.time),
          xids: new Uint32Array(n * 2),
        },
      ],
      rest: truncate,
      restPositions: truncate.map(() => 0),
    },
  };
}

/** A snapshot row as a read (`r`) change. */
function readChange(plan: SnapshotPlan, schema: TableSchema & { version: number }, names: readonly string[], keyIdx: readonly number[], values: Value[]): Change {
  const after: Row = {};
  for (let i = 0; i < names.length; i++) after[names[i]!] = values[i]!;
  const key: Row = {};
  for (let i = 0; i < keyIdx.length; i++) key[schema.keyColumns[i]!] = values[keyIdx[i]!]!;
  return {
    table: schema.table,
    op: 'r',
    key,
    before: null,
    after,
    lsn: plan.lsn,
    commitLsn: plan.lsn,
    commitTime: plan.time,
    xid: 0,
    schemaVersion: schema.version,
  };
}

/** Hands every field to both sinks, `first` first. */
function teeSink(first: CopyRowSink, second: CopyRowSink): CopyRowSink {
  return {
    field(column, buf, start, end) {
      first.field(column, buf, start, end);
      second.field(column, buf, start, end);
    },
    nullField(column) {
      first.nullField(column);
      second.nullField(column);
    },
    endRow() {
      first.endRow();
      second.endRow();
    },
  };
}
