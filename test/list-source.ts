/**
 * A source whose changes are a list in memory (no snapshot: its whole history comes through follow),
 * for tests that run the engine without PostgreSQL's timing: test/list-source.int.test.ts (the shape
 * check of the Source interface) and test/publish-overlap.int.test.ts.
 */
import { ContainerModule } from 'inversify';
import type { SourceAdapter } from '../framework/config.js';
import type {
  FollowOptions,
  PrepareOptions,
  PrepareResult,
  Source,
  SourceRecord,
  SourceStatus,
  TeardownResult,
} from '../framework/interfaces/index.js';
import { TOKENS, type Change, type ChangeBatch, type Position, type VersionedSchema } from '../index.js';

export const SCHEMA: VersionedSchema = {
  table: 'shop.prices',
  version: 1,
  keyColumns: ['sku'],
  columns: [
    { name: 'sku', type: 'text', array: false, typeOid: 25, key: true },
    { name: 'price', type: 'float8', array: false, typeOid: 701, key: false },
  ],
};

/** A source whose changes are a list in memory, position i + 1 for the i-th; one batch per transaction of `perTx` changes. */
export class ListSource implements Source {
  confirmed: Position = 0n;
  constructor(
    private readonly changes: readonly Change[],
    private readonly perTx: number,
    /** A pause before each transaction after the first, as if it arrived then (0: all at once). */
    private readonly everyMs = 0,
  ) {}

  async prepare(options: PrepareOptions): Promise<PrepareResult> {
    return { tables: [SCHEMA], resumable: options.record !== null, record: { kind: 'list' } };
  }

  async *follow(from: Position, options: FollowOptions = {}): AsyncGenerator<ChangeBatch> {
    let first = (options.schemas ?? []).length === 0;
    for (let i = 0; i < this.changes.length; i += this.perTx) {
      const part = this.changes.slice(i, i + this.perTx).filter((c) => c.commitPosition > from);
      if (part.length === 0) continue;
      if (this.everyMs > 0 && i > 0) await new Promise((resolve) => setTimeout(resolve, this.everyMs));
      const checkpoint = part[part.length - 1]!.commitPosition;
      if (options.until !== undefined && checkpoint > options.until) return;
      yield {
        groups: [],
        changes: part.map((c) => ({ ...c })),
        changeIndexes: part.map((_, k) => k),
        size: part.length,
        complete: true,
        checkpoint,
        schemas: first ? [SCHEMA] : [],
      };
      first = false;
      if (options.until !== undefined && checkpoint >= options.until) return;
    }
  }

  async currentPosition(): Promise<Position> {
    return BigInt(this.changes.length);
  }

  confirm(position: Position): void {
    this.confirmed = position;
  }

  async status(_record: SourceRecord | null): Promise<SourceStatus> {
    return { confirmed: this.confirmed, head: BigInt(this.changes.length), lag: null, lagUnit: 'changes', holds: {} };
  }

  async teardown(): Promise<TeardownResult> {
    return { dropped: [], leftAlone: [] };
  }

  async close(): Promise<void> {}
}

export function listAdapter(source: Source): SourceAdapter {
  return {
    kind: 'source',
    name: 'list',
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.Source).toConstantValue(source);
    }),
    withTables: () => listAdapter(source),
  };
}

/** Inserts, updates and deletes of a few SKUs, in transactions of 3. */
export function history(): Change[] {
  const ops: [Change['op'], string, number | null][] = [
    ['c', 'a', 1],
    ['c', 'b', 2],
    ['c', 'c', 3],
    ['u', 'a', 10],
    ['d', 'b', null],
    ['c', 'd', 4],
    ['u', 'c', 30],
    ['u', 'a', 100],
    ['c', 'b', 20],
  ];
  return ops.map(([op, sku, price], i) => {
    const position = BigInt(i + 1);
    const row = { sku, price };
    return {
      table: SCHEMA.table,
      op,
      key: { sku },
      before: op === 'd' ? { sku } : null,
      after: op === 'd' ? null : row,
      position,
      commitPosition: BigInt(Math.floor(i / 3) * 3 + 3),
      commitTime: 1_700_000_000_000_000n + BigInt(Math.floor(i / 3)) * 1_000_000n,
      xid: Math.floor(i / 3) + 1,
      schemaVersion: 1,
    };
  });
}
