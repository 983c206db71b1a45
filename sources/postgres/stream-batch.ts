/**
 * Builds the stream's batches: inserts and updates without an old row (their new row) and deletes
 * (their old row) go column-wise into one {@link RowGroup} per table schema version, their bytes
 * copied from the pgoutput message as the snapshot copies COPY fields; every other change is a
 * {@link Change}.
 */
import type { Change, ChangeBatch, Position, RowGroup, VersionedSchema } from '../../framework/types.js';
import { SnapshotColumnsBuilder } from './snapshot-columns.js';

/** Rows a group's buffers start with; they double as rows come. */
const INITIAL_ROWS = 64;

/** Column-wise rows of one table schema version, with each row's place and commit data. */
export class GroupBuilder {
  readonly columns: SnapshotColumnsBuilder;
  private length = 0;
  private indexes = new Int32Array(INITIAL_ROWS);
  private ops = new Uint8Array(INITIAL_ROWS);
  private positions = new BigUint64Array(INITIAL_ROWS);
  private commitPositions = new BigUint64Array(INITIAL_ROWS);
  private commitTimes = new BigInt64Array(INITIAL_ROWS);
  private xids = new Uint32Array(INITIAL_ROWS * 2);

  constructor(
    readonly schema: VersionedSchema,
    capacity: number,
    utf8Server: boolean,
  ) {
    this.columns = new SnapshotColumnsBuilder(schema.columns, capacity, { utf8Server, initialCapacity: INITIAL_ROWS });
  }

  get size(): number {
    return this.length;
  }

  /** Records the row just written to {@link columns}. */
  add(index: number, op: number, position: Position, commitPosition: Position, commitTime: bigint, xid: number): void {
    const i = this.length++;
    if (i === this.indexes.length) this.grow();
    this.indexes[i] = index;
    this.ops[i] = op;
    this.positions[i] = position;
    this.commitPositions[i] = commitPosition;
    this.commitTimes[i] = commitTime;
    this.xids[i * 2] = xid;
  }

  private grow(): void {
    const n = this.indexes.length * 2;
    const grown = <T extends { set(a: T): void }>(a: T, make: (n: number) => T, size = n) => {
      const out = make(size);
      out.set(a);
      return out;
    };
    this.indexes = grown(this.indexes, (k) => new Int32Array(k));
    this.ops = grown(this.ops, (k) => new Uint8Array(k));
    this.positions = grown(this.positions, (k) => new BigUint64Array(k));
    this.commitPositions = grown(this.commitPositions, (k) => new BigUint64Array(k));
    this.commitTimes = grown(this.commitTimes, (k) => new BigInt64Array(k));
    this.xids = grown(this.xids, (k) => new Uint32Array(k), n * 2);
  }

  take(): RowGroup {
    const n = this.length;
    const group: RowGroup = {
      table: this.schema.table,
      schemaVersion: this.schema.version,
      rows: this.columns.take(),
      indexes: this.indexes.subarray(0, n),
      ops: this.ops.subarray(0, n),
      positions: this.positions.subarray(0, n),
      commitPositions: this.commitPositions.subarray(0, n),
      commitTimes: this.commitTimes.subarray(0, n),
      xids: this.xids.subarray(0, n * 2),
    };
    const size = Math.max(INITIAL_ROWS, this.indexes.length);
    this.length = 0;
    this.indexes = new Int32Array(size);
    this.ops = new Uint8Array(size);
    this.positions = new BigUint64Array(size);
    this.commitPositions = new BigUint64Array(size);
    this.commitTimes = new BigInt64Array(size);
    this.xids = new Uint32Array(size * 2);
    return group;
  }
}

/** The batch being built. */
export class StreamBatchBuilder {
  private changes: Change[] = [];
  private changeIndexes: number[] = [];
  private count = 0;
  /** One builder per schema version seen (kept across batches), and those holding rows now. */
  private readonly groups = new Map<object, GroupBuilder>();
  private readonly filled = new Set<GroupBuilder>();

  constructor(private readonly options: { readonly utf8Server: boolean; readonly batchSize: number }) {}

  /** Changes in the batch so far. */
  get size(): number {
    return this.count;
  }

  /** True when the batch holds rows in a group (which only the store can look up once written). */
  get hasRows(): boolean {
    return this.filled.size > 0;
  }

  /** The group of `schema`'s rows: write a row into its `columns`, then call {@link addRow}. */
  groupOf(schema: VersionedSchema): GroupBuilder {
    let group = this.groups.get(schema);
    if (!group) {
      group = new GroupBuilder(schema, this.options.batchSize, this.options.utf8Server);
      this.groups.set(schema, group);
    }
    return group;
  }

  /**
   * Records the row just written to `group.columns` (the new row of an insert or update, the old one
   * of a delete: its key, or every column under REPLICA IDENTITY FULL).
   */
  addRow(
    group: GroupBuilder,
    op: 'c' | 'u' | 'd',
    position: Position,
    commitPosition: Position,
    commitTime: bigint,
    xid: number,
  ): void {
    group.add(this.count++, op.charCodeAt(0), position, commitPosition, commitTime, xid);
    this.filled.add(group);
  }

  /** Adds a change that is not carried column-wise. */
  addChange(change: Change): void {
    this.changes.push(change);
    this.changeIndexes.push(this.count++);
  }

  /** The batch so far; the builder starts anew. */
  take(complete: boolean, checkpoint: Position, schemas: readonly VersionedSchema[]): ChangeBatch {
    const batch: ChangeBatch = {
      groups: [...this.filled].map((g) => g.take()),
      changes: this.changes,
      changeIndexes: this.changeIndexes,
      size: this.count,
      complete,
      checkpoint,
      schemas,
    };
    this.changes = [];
    this.changeIndexes = [];
    this.count = 0;
    this.filled.clear();
    return batch;
  }
}
