import type { ChangeBatch, Position } from '../types.js';

/**
 * What {@link IngestOptions.onBatch} hears after each batch; the engine waits for a returned promise
 * before the next batch (a complete batch's store transaction is committed by then).
 */
export interface BatchInfo {
  readonly changes: number;
  /** Changes per table and op (`r`, `c`, `u`, `d`, `t`) in this batch. */
  readonly tables: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly checkpoint: Position;
  /** Whether the batch completed a transaction (its checkpoint is durable). */
  readonly complete: boolean;
  /** Set for the batches of a snapshot (also of a table read again). */
  readonly snapshot?: { readonly table: string; readonly done: boolean };
  /**
   * Complete stream batches with changes: the newest commit time among them (µs since the Unix
   * epoch, the source's clock). Heard once the batch is durable, so {@link msBehind} of it is how far
   * behind its source the store is. (A batch that ends mid-transaction is not durable yet when heard:
   * it has none.)
   */
  readonly commitTime?: bigint;
}

/** How far behind its source a store is whose newest durable commit is `commitTime` (µs): ms, at least 0. */
export function msBehind(commitTime: bigint, now = Date.now()): number {
  return Math.max(0, now - Number(commitTime / 1000n));
}

/** What onBatch hears of a batch. */
export function batchInfo(batch: ChangeBatch): BatchInfo {
  const tables: Record<string, Record<string, number>> = {};
  let commitTime: bigint | undefined;
  const count = (table: string, op: string, n = 1) => {
    const ops = (tables[table] ??= {});
    ops[op] = (ops[op] ?? 0) + n;
  };
  for (const g of batch.groups) {
    // A snapshot's rows are all reads.
    if (batch.snapshot) count(g.table, 'r', g.ops.length);
    else {
      for (const op of g.ops) count(g.table, String.fromCharCode(op));
      // Rows are in commit order: a group's newest commit is its last row's.
      const last = g.commitTimes.at(-1);
      if (last !== undefined && (commitTime === undefined || last > commitTime)) commitTime = last;
    }
  }
  for (const c of batch.changes) {
    count(c.table, c.op);
    if (!batch.snapshot && (commitTime === undefined || c.commitTime > commitTime)) commitTime = c.commitTime;
  }
  const info = {
    changes: batch.size,
    tables,
    checkpoint: batch.checkpoint,
    complete: batch.complete,
    ...(commitTime === undefined || !batch.complete ? {} : { commitTime }),
  };
  return batch.snapshot ? { ...info, snapshot: { table: batch.snapshot.table, done: batch.snapshot.done } } : info;
}
