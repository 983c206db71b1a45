import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerModule } from 'inversify';
import { describe, expect, test } from 'vitest';
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
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  entity,
  featureView,
  float64,
  TOKENS,
  type Change,
  type ChangeBatch,
  type Position,
  type VersionedSchema,
} from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';

// The shape check of the Source interface: a second source, over an in-memory list of changes, with
// no snapshot (its whole history comes through follow), runs through the engine, the DuckDB change
// log and the feature history unchanged.

const SCHEMA: VersionedSchema = {
  table: 'shop.prices',
  version: 1,
  keyColumns: ['sku'],
  columns: [
    { name: 'sku', type: 'text', array: false, typeOid: 25, key: true },
    { name: 'price', type: 'float8', array: false, typeOid: 701, key: false },
  ],
};

/** A source whose changes are a list in memory, position i + 1 for the i-th; one batch per transaction of `perTx` changes. */
class ListSource implements Source {
  confirmed: Position = 0n;
  constructor(
    private readonly changes: readonly Change[],
    private readonly perTx: number,
  ) {}

  async prepare(options: PrepareOptions): Promise<PrepareResult> {
    return { tables: [SCHEMA], resumable: options.record !== null, record: { kind: 'list' } };
  }

  async *follow(from: Position, options: FollowOptions = {}): AsyncGenerator<ChangeBatch> {
    let first = (options.schemas ?? []).length === 0;
    for (let i = 0; i < this.changes.length; i += this.perTx) {
      const part = this.changes.slice(i, i + this.perTx).filter((c) => c.commitPosition > from);
      if (part.length === 0) continue;
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

function listAdapter(source: Source): SourceAdapter {
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
function history(): Change[] {
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

describe('a second Source (an in-memory list, no snapshot) runs through the engine unchanged', () => {
  test('change log, feature history and checkpoint; a second run resumes after it', async () => {
    const item = entity({ name: 'item', keys: ['sku'] });
    const prices = featureView({
      name: 'prices',
      version: 1,
      entity: item,
      source: 'shop.prices',
      features: { price: float64 },
    });
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-list-')), 'store.duckdb');
    const changes = history();
    const source = new ListSource(changes.slice(0, 6), 3);
    const config = defineConfig({
      source: listAdapter(source),
      store: duckdb({ path }),
      features: { views: [prices] },
      logLevel: 'silent',
    });

    let container = await createContainer(config);
    let result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    expect(result).toMatchObject({ snapshotted: true, changesApplied: 6, checkpoint: 6n });
    expect(source.confirmed).toBe(6n);
    await closeContainer(container);

    // More changes arrive; the next run resumes after the checkpoint.
    const more = new ListSource(changes, 3);
    container = await createContainer({ ...config, source: listAdapter(more) });
    result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    expect(result).toMatchObject({ snapshotted: false, changesApplied: 3, checkpoint: 9n });
    const latest = await (await container.getAsync(TOKENS.OfflineStore)).latest('prices');
    expect(latest.toArray().map((r) => [String(r.sku), Number(r.price)])).toEqual([
      ['a', 100],
      ['b', 20],
      ['c', 30],
      ['d', 4],
    ]);
    await closeContainer(container);

    const db = await openDuckDB(path, { readOnly: true });
    try {
      const logged = (await db.connection.runAndReadAll('SELECT op, key, lsn FROM change_log ORDER BY seq')).getRows();
      expect(logged.map(([op, key, position]) => [op, key, Number(position)])).toEqual(
        changes.map((c) => [c.op, JSON.stringify(c.key), Number(c.position)]),
      );
      const current = (await db.connection.runAndReadAll(`SELECT key FROM current_rows('shop.prices') ORDER BY key`))
        .getRows()
        .map((r) => r[0]);
      expect(current).toEqual(['{"sku":"a"}', '{"sku":"b"}', '{"sku":"c"}', '{"sku":"d"}']);
    } finally {
      db.close();
    }
  });
});
