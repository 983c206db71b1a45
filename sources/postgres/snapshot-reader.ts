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
 * yielded while the socket waits, so memory does not grow with the table.
 */
export async function* readSnapshot(plan: SnapshotPlan): AsyncGenerator<ChangeBatch> {
  for (const schema of plan.tables) {
    const client = await connectClient(plan.clientConfig);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`SET TRANSACTION SNAPSHOT '${plan.snapshotName.replaceAll("'", "''")}'`);
      const names = schema.columns.map((c) => c.name);
      const parser = new CopyBinaryParser(schema.columns.map((c) => decoderFor(c.type, c.array)));
      const stream = client.query(copyTo(`COPY ${quoteTable(schema.table)} (${names.map(quoteIdent).join(', ')}) TO STDOUT (FORMAT binary)`));
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
      const batch = (done: boolean): ChangeBatch => {
        const out = { changes, complete: true, checkpoint: plan.lsn, schemas: first ? [schema] : [], snapshot: { table: schema.table, done } };
        first = false;
        changes = [];
        return out;
      };
      for await (const chunk of stream) {
        parser.push(chunk as Buffer, onRow);
        if (changes.length >= plan.batchSize) yield batch(false);
      }
      parser.end();
      await client.query('COMMIT');
      yield batch(true);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
