/**
 * Shared by the feature benchmarks: a synthetic `public.items` stream (no PostgreSQL needed: the
 * feature path starts at the change log) and a DuckDB store holding a view's history.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  entity,
  FeatureRegistry,
  type FeatureView,
  featureView,
  float64,
  text,
} from '../../framework/features/index.js';
import { Materializer } from '../../framework/features/materialize.js';
import type { Change, ChangeBatch, Position, TableSchema, VersionedSchema } from '../../framework/types.js';
import { DuckDBChangeLog } from '../../stores/duckdb/duckdb-change-log.js';
import { HistoryTables } from '../../stores/duckdb/offline/history-tables.js';
import { ITEMS } from '../../testing/items.js';

export { ITEMS };

export const itemView = featureView({
  name: 'items',
  version: 1,
  entity: entity({ name: 'item', keys: ['id'] }),
  source: 'items',
  features: { doubled: float64, name: text },
  transform: (row) => ({ doubled: (row.value as number) * 2, name: row.name as string | null }),
});

export const T0 = 1_700_000_000_000_000n;

/** A complete batch made only of Change objects (no column-wise groups), each change at its own index. */
function changeBatch(changes: Change[], checkpoint: Position, schemas: readonly VersionedSchema[]): ChangeBatch {
  return {
    groups: [],
    changes,
    changeIndexes: changes.map((_, i) => i),
    size: changes.length,
    complete: true,
    checkpoint,
    schemas,
  };
}

/**
 * `total` changes of `keys` items in batches of `batchSize`: a snapshot of every key, then updates
 * (80%), deletes (10%) and re-inserts (10%) of random keys, one transaction per change, a millisecond apart.
 */
export function* itemBatches(total: number, keys: number, batchSize: number): Generator<ChangeBatch> {
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const live = new Uint8Array(keys + 1);
  let position = 1000n;
  let time = T0;
  let made = 0;
  let first = true;
  while (made < total) {
    const changes: Change[] = [];
    const n = Math.min(batchSize, total - made);
    for (let i = 0; i < n; i++, made++) {
      if (made < keys) {
        const id = made + 1;
        live[id] = 1;
        changes.push({
          table: ITEMS.table,
          op: 'r',
          key: { id },
          before: null,
          after: { id, value: id / 3, name: `item ${id}` },
          position: 1000n,
          commitPosition: 1000n,
          commitTime: T0,
          xid: 0,
          schemaVersion: 1,
        });
        continue;
      }
      position += 16n;
      time += 1000n;
      const id = 1 + Math.floor(rand() * keys);
      const r = rand();
      if (live[id] && r < 0.1) {
        live[id] = 0;
        changes.push({
          table: ITEMS.table,
          op: 'd',
          key: { id },
          before: { id },
          after: null,
          position,
          commitPosition: position,
          commitTime: time,
          xid: made,
          schemaVersion: 1,
        });
      } else {
        const op = live[id] ? 'u' : 'c';
        live[id] = 1;
        changes.push({
          table: ITEMS.table,
          op,
          key: { id },
          before: null,
          after: { id, value: r * 100, name: `item ${id} v${made}` },
          position,
          commitPosition: position,
          commitTime: time,
          xid: made,
          schemaVersion: 1,
        });
      }
    }
    yield changeBatch(changes, changes[changes.length - 1]!.commitPosition, first ? [ITEMS] : []);
    first = false;
  }
}

/** A store holding a view's history: the change log, its history tables and the materializer feeding them. */
export interface ViewStore {
  readonly log: DuckDBChangeLog;
  readonly history: HistoryTables;
  readonly materializer: Materializer;
  readonly dir: string;
  close(): Promise<void>;
}

/** A fresh store with the `items` view registered; the first (empty) batch creates its table. */
export function openItemStore(): Promise<ViewStore> {
  return openViewStore(itemView, ITEMS);
}

/** A fresh store capturing `schema`'s table with `view` registered; the first (empty) batch creates its table. */
export async function openViewStore(
  view: FeatureView,
  schema: TableSchema & { readonly version: number },
): Promise<ViewStore> {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-bench-features-'));
  const materializer = new Materializer(new FeatureRegistry({ views: [view] }));
  const history = new HistoryTables(materializer);
  const log = new DuckDBChangeLog(join(dir, 'store.duckdb'), {}, history);
  await log.open();
  await log.reset({ tables: [schema.table], point: 1000n });
  // The stages of the ingest engine: schemas to the materializer, feature rows, then both applied.
  const first = changeBatch([], 1000n, [schema]);
  materializer.addSchemas(first.schemas);
  await log.apply(first, materializer.materialize(first));
  return {
    log,
    history,
    materializer,
    dir,
    async close() {
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Fills the `items` view's history (its append-only base table `fv_items_v1__rows`, in time order)
 * with `entities` × `versions` rows by SQL (a deletion as every 20th entity's last version), as
 * ingest would have left it.
 */
export async function fillItemHistory(log: DuckDBChangeLog, entities: number, versions: number): Promise<void> {
  await log.connection.run(`
    INSERT INTO fv_items_v1__rows
    SELECT id, CASE WHEN deleted THEN NULL ELSE v * 0.5 END, CASE WHEN deleted THEN NULL ELSE 'item ' || id || ' v' || v END,
           valid_from, 1000 + v, CASE WHEN deleted THEN 'd' WHEN v = 0 THEN 'r' ELSE 'u' END, deleted, row_number() OVER (ORDER BY valid_from, id)
      FROM (SELECT e.range::INTEGER + 1 AS id, v.range AS v,
                   make_timestamptz(${T0}::BIGINT + v.range * 3600000000 + (hash(e.range, v.range) % 3600000000)::BIGINT) AS valid_from,
                   v.range = ${versions - 1} AND e.range % 20 = 0 AS deleted
              FROM range(${entities}) e, range(${versions}) v)
     ORDER BY valid_from, id`);
}
