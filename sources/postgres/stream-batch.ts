/**
 * Builds the stream's batches in storage form ({@link StreamStorage}): inserts and updates without an
 * old row (their new row) and deletes (their old row) go column-wise into one {@link StreamRowGroup} per table schema version, their bytes copied
 * from the pgoutput message as the snapshot copies COPY fields; every other change is a
 * {@link Change}. With `changes`, every change is also decoded into a Change for the store's
 * consumers.
 */
import type { Change, ChangeBatch, Lsn, StreamRowGroup, TableSchema } from '../../framework/types.js';
import { SnapshotColumnsBuilder } from './snapshot-columns.js';

/** Rows a group's buffers start with; they double as rows come. */
const INITIAL_ROWS = 64;

/** Column-wise rows of one table schema version, with each row's place and commit data. */
export class GroupBuilder {
  readonly columns: SnapshotColumnsBuilder;
  private length = 0;
  private positions = new Int32Array(INITIAL_ROWS);
  private ops = new Uint8Array(INITIAL_ROWS);
  private lsns = new BigUint64Array(INITIAL_ROWS);
  private commitLsns = new BigUint64Array(INITIAL_ROWS);
  private commitTimes = new BigInt64Array(INITIAL_ROWS);
  private xids = new Uint32Array(INITIAL_ROWS * 2);

  constructor(readonly schema: TableSchema & { readonly version: number }, capacity: number, utf8Server: boolean) {
    this.columns = new SnapshotColumnsBuilder(schema.columns, capacity, { utf8Server, initialCapacity: INITIAL_ROWS });
  }

  get size(): number {
    return this.length;
  }

  /** Records the row just written to {@link columns}. */
  add(position: number, op: number, lsn: Lsn, commitLsn: Lsn, commitTime: bigint, xid: number): void {
    const i = this.length++;
    if (i === this.positions.length) this.grow();
    this.positions[i] = position;
    this.ops[i] = op;
    this.lsns[i] = lsn;
    this.commitLsns[i] = commitLsn;
    this.commitTimes[i] = commitTime;
    this.xids[i * 2] = xid;
  }

  private grow(): void {
    const n = this.positions.length * 2;
    const grown = <T extends { set(a: T): void }>(a: T, make: (n: number) => T, size = n) => {
      const out = make(size);
      out.set(a);
      return out;
    };
    this.positions = grown(this.positions, (k) => new Int32Array(k));
    this.ops = grown(this.ops, (k) => new Uint8Array(k));
    this.lsns = grown(this.lsns, (k) => new BigUint64Array(k));
    this.commitLsns = grown(this.commitLsns, (k) => new BigUint64Array(k));
    this.commitTimes = grown(this.commitTimes, (k) => new BigInt64Array(k));
    this.xids = grown(this.xids, (k) => new Uint32Array(k), n * 2);
  }

  take(): StreamRowGroup {
    const n = this.length;
    const group: StreamRowGroup = {
      table: this.schema.table,
      schemaVersion: this.schema.version,
      rows: this.columns.take(),
      positions: this.positions.subarray(0, n),
      ops: this.ops.subarray(0, n),
      lsns: this.lsns.subarray(0, n),
      commitLsns: this.commitLsns.subarray(0, n),
      commitTimes: this.commitTimes.subarray(0, n),
      xids: this.xids.subarray(0, n * 2),
    };
    const size = Math.max(INITIAL_ROWS, this.positions.length);
    this.length = 0;
    this.positions = new Int32Array(size);
    this.ops = new Uint8Array(size);
    this.lsns = new BigUint64Array(size);
    this.commitLsns = new BigUint64Array(size);
    this.commitTimes = new BigInt64Array(size);
    this.xids = new Uint32Array(size * 2);
    return group;
  }
}

/** The batch being built. */
export class StreamBatchBuilder {
  /** Every change, when the consumers asked for them. */
  private changes: Change[] = [];
  private rest: Change[] = [];
  private restPositions: number[] = [];
  private count = 0;
  /** One builder per schema version seen (kept across batches), and those holding rows now. */
  private readonly groups = new Map<object, GroupBuilder>();
  private readonly filled = new Set<GroupBuilder>();

  constructor(private readonly options: { readonly changes: boolean; readonly utf8Server: boolean; readonly batchSize: number }) {}

  /** Changes in the batch so far. */
  get size(): number {
    return this.count;
  }

  /** True when the batch holds rows in a group (which only the store can look up once written). */
  get hasRows(): boolean {
    return this.filled.size > 0;
  }

  /** True when the caller must also pass each row's change to {@link addRow}. */
  get wantsChanges(): boolean {
    return this.options.changes;
  }

  /** The group of `schema`'s rows: write a row into its `columns`, then call {@link addRow}. */
  groupOf(schema: TableSchema & { readonly version: number }): GroupBuilder {
    let group = this.groups.get(schema);
    if (!group) {
      group = new GroupBuilder(schema, this.options.batchSize, this.options.utf8Server);
      this.groups.set(schema, group);
    }
    return group;
  }

  /**
   * Records the row just written to `group.columns` (the new row of an insert or update, the old one
   * of a delete: its key, or every column under REPLICA IDENTITY FULL); `change` is its Change when
   * {@link wantsChanges}.
   */
  addRow(group: GroupBuilder, op: 'c' | 'u' | 'd', lsn: Lsn, commitLsn: Lsn, commitTime: bigint, xid: number, change?: Change): void {
    group.add(this.count++, op.charCodeAt(0), lsn, commitLsn, commitTime, xid);
    this.filled.add(group);
    if (change) this.changes.push(change);
  }

  /** Adds a change stored as such. */
  addChange(change: Change): void {
    this.rest.push(change);
    this.restPositions.push(this.count++);
    if (this.options.changes) this.changes.push(change);
  }

  /** The batch so far; the builder starts anew. */
  take(complete: boolean, checkpoint: Lsn, schemas: readonly (TableSchema & { version: number })[]): ChangeBatch {
    const batch: ChangeBatch = {
      changes: this.changes,
      complete,
      checkpoint,
      schemas,
      stored: { size: this.count, groups: [...this.filled].map((g) => g.take()), rest: this.rest, restPositions: this.restPositions },
    };
    this.changes = [];
    this.rest = [];
    this.restPositions = [];
    this.count = 0;
    this.filled.clear();
    return batch;
  }
}
