import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { Change, ChangeBatch, Lsn, Row, TableSchema, Value } from '../../framework/types';
import { CopyBinaryParser } from './copy-binary-parser';
import { decoderFor } from './pg-binary';
import { connectClient, quoteIdent, quoteTable } from './pg-connection';

/** Where and how to read the snapshot. */
export interface SnapshotPlan {
  readonly clientConfig: pg.ClientConfig;
  /** Name of the snapshot exported by CREATE_REPLICATION_SLOT. */
  readonly snapshotName: string;
  /** The slot's consistent point: the LSN stamped on every read. */
  readonly lsn: Lsn;
  /** When the snapshot was taken, µs since the Unix epoch. */
  readonly time: bigint;
  readonly tables: readonly (TableSchema & { version: number })[];
  readonly batchSize: number;
}

/**
 * Reads each table inside the exported snapshot (repeatable read + SET TRANSACTION SNAPSHOT) with
 * `COPY … TO STDOUT (FORMAT binary)`, decoded as it streams: batches of at most `batchSize` rows are
 * yielded while the socket waits, so memory does not grow with the table. Only a table's last batch is
 * `complete`.
 */
export async function* readSnapshot(plan: SnapshotPlan): AsyncGenerator<ChangeBatch> {
  for (const schema of plan.tables) {
    const client = await connectClient(plan.clientConfig);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${plan.snapshotName.replaceAll("'", "''")}'`);
      const names = schema.columns.map((c) => c.name);
      const parser = new CopyBinaryParser(schema.columns.map((c) => decoderFor(c.type, c.array)));
      const columns = names.map(quoteIdent).join(', ');
      const { rows: kind } = await client.query('SELECT relkind FROM pg_class WHERE oid = $1::regclass', [quoteTable(schema.table)]);
      // A partitioned table has no rows of its own and COPY refuses it; its partitions' rows are read
      // through a query (the stream reports them under the parent: publish_via_partition_root).
      const source =
        kind[0]?.relkind === 'p' ? `(SELECT ${columns} FROM ${quoteTable(schema.table)})` : `${quoteTable(schema.table)} (${columns})`;
      const stream = client.query(copyTo(`COPY ${source} TO STDOUT (FORMAT binary)`));
      let changes: Change[] = [];
      let first = true;
      const keyIdx = schema.keyColumns.map((k) => names.indexOf(k));
      const onRow = (values: Value[]) => {
        const after: Row = {};
        for (let i = 0; i < names.length; i++) after[names[i]!] = values[i]!;
        const key: Row = {};
        for (let i = 0; i < keyIdx.length; i++) key[schema.keyColumns[i]!] = values[keyIdx[i]!]!;
        changes.push({
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
        });
      };
      /** The next batch: at most `batchSize` rows (one COPY chunk may hold thousands of small rows). */
      const batch = (done: boolean): ChangeBatch => {
        let rows = changes;
        if (rows.length > plan.batchSize) rows = changes.splice(0, plan.batchSize);
        else changes = [];
        // A table's batches form one store transaction, committed with its last batch: an interrupted
        // snapshot is taken again from the start anyway, and one commit per table spares the store a
        // WAL write and checkpoint per batch.
        const out = { changes: rows, complete: done, checkpoint: plan.lsn, schemas: first ? [schema] : [], snapshot: { table: schema.table, done } };
        first = false;
        return out;
      };
      for await (const chunk of stream) {
        parser.push(chunk as Buffer, onRow);
        while (changes.length >= plan.batchSize) yield batch(false);
      }
      parser.end();
      await client.query('COMMIT');
      while (changes.length > plan.batchSize) yield batch(false);
      yield batch(true);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
