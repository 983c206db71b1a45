import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as arrow from 'apache-arrow';
import {
  bool,
  FeatureRegistry,
  float32,
  float64,
  int32,
  int64,
  tensor,
  text,
  timestamp,
  type FeatureDefinitions,
} from '../framework/features/index.js';
import { Materializer } from '../framework/features/materialize.js';
import type { ChangeLog } from '../framework/interfaces/index.js';
import type { Change, ChangeBatch, Op, Position, Row } from '../framework/types.js';
import { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';
import { HistoryTables } from '../stores/duckdb/offline/history-tables.js';
import { ITEMS } from '../testing/items.js';

/** One feature of every type, scalars and tensors (each tensor dtype), for round-trip tests of stores and codecs. */
export const EVERY_TYPE_FEATURES = {
  f32: float32,
  f64: float64,
  i32: int32,
  i64: int64,
  flag: bool,
  label: text,
  at: timestamp,
  pixels: tensor('float32', [2, 3]),
  weights: tensor('float64', [4]),
  counts: tensor('int32', [2, 2]),
} as const;

/** A small deterministic PRNG (mulberry32), so a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export { ITEMS };

export const T0 = 1_700_000_000_000_000n;

/** A synthetic history of `public.items`: its changes in commit order, and batches cutting them at random places. */
export interface History {
  readonly changes: Change[];
  readonly batches: ChangeBatch[];
  /** Commit times used (µs), ascending. */
  readonly times: bigint[];
}

/**
 * Random transactions over `keys` ids: a snapshot of about half the keys, then inserts, updates,
 * deletes, key moves (updates of the primary key), several changes of one key in one transaction,
 * transactions sharing a commit time, and now and then a truncate. Batches end mid-transaction too.
 */
export function randomHistory(
  seed: number,
  options: { keys: number; transactions: number; truncates?: boolean },
): History {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const live = new Map<number, Row>();
  const changes: Change[] = [];
  const times: bigint[] = [];
  let position = 1000n;
  let time = T0;
  const txEnds: number[] = [];
  // Snapshot reads share the consistent point.
  for (let id = 1; id <= options.keys; id++) {
    if (rand() < 0.5) {
      const row = { id, value: Math.round(rand() * 1000) / 10, name: `n${id}` };
      live.set(id, row);
      changes.push(mk('r', row, null, position, position, time));
    }
  }
  times.push(time);
  txEnds.push(changes.length);
  for (let tx = 0; tx < options.transactions; tx++) {
    // Occasionally two transactions commit in the same microsecond.
    time += rand() < 0.1 ? 0n : BigInt(1 + Math.floor(rand() * 5_000_000));
    times.push(time);
    const commitPosition = position + 100n;
    const n = 1 + Math.floor(rand() * 4);
    for (let i = 0; i < n; i++) {
      position += 1n;
      const r = rand();
      const id = 1 + Math.floor(rand() * options.keys);
      if (options.truncates && r < 0.01) {
        live.clear();
        changes.push({
          table: ITEMS.table,
          op: 't',
          key: null,
          before: null,
          after: null,
          position,
          commitPosition,
          commitTime: time,
          xid: tx + 1,
          schemaVersion: 1,
        });
      } else if (!live.has(id)) {
        const row = { id, value: Math.round(rand() * 1000) / 10, name: `n${id}-${tx}` };
        live.set(id, row);
        changes.push(mk('c', row, null, position, commitPosition, time));
      } else if (r < 0.6) {
        const row = {
          ...live.get(id)!,
          value: Math.round(rand() * 1000) / 10,
          name: rand() < 0.2 ? null : `u${id}-${tx}`,
        } as Row;
        live.set(id, row);
        changes.push(mk('u', row, null, position, commitPosition, time));
      } else if (r < 0.67) {
        // Primary-key update: the row moves to a free id.
        const free = Array.from({ length: options.keys }, (_, k) => k + 1).filter((k) => !live.has(k));
        if (free.length === 0) continue;
        const to = pick(free);
        const row = { ...live.get(id)!, id: to };
        live.delete(id);
        live.set(to, row);
        changes.push(mk('u', row, { id }, position, commitPosition, time));
      } else {
        live.delete(id);
        changes.push({
          table: ITEMS.table,
          op: 'd',
          key: { id },
          before: { id },
          after: null,
          position,
          commitPosition,
          commitTime: time,
          xid: tx + 1,
          schemaVersion: 1,
        });
      }
    }
    position = commitPosition;
    txEnds.push(changes.length);
  }
  // Cut into batches of random size; a batch is complete when it ends on a transaction end.
  const batches: ChangeBatch[] = [];
  const ends = new Set(txEnds);
  let start = 0;
  let first = true;
  while (start < changes.length) {
    let end = Math.min(changes.length, start + 1 + Math.floor(rand() * 40));
    if (rand() < 0.7) end = [...ends].filter((e) => e >= end).sort((a, b) => a - b)[0] ?? changes.length;
    const part = changes.slice(start, end);
    batches.push(
      batchOf({
        changes: part,
        complete: ends.has(end),
        checkpoint: part[part.length - 1]!.commitPosition,
        schemas: first ? [ITEMS] : [],
      }),
    );
    first = false;
    start = end;
  }
  return { changes, batches, times };
}

function mk(
  op: Op,
  after: Row,
  before: Row | null,
  position: Position,
  commitPosition: Position,
  commitTime: bigint,
): Change {
  return {
    table: ITEMS.table,
    op,
    key: { id: after.id! },
    before,
    after: { ...after },
    position,
    commitPosition,
    commitTime,
    xid: 1,
    schemaVersion: 1,
  };
}

/** A batch made only of Change objects (no column-wise groups), each change at its own index. */
export function batchOf(
  parts: Pick<ChangeBatch, 'complete' | 'checkpoint' | 'schemas'> & { readonly changes: Change[] },
): ChangeBatch {
  const { changes } = parts;
  return { ...parts, groups: [], changeIndexes: changes.map((_, i) => i), size: changes.length };
}

/** The state of `public.items` at `t` (changes committed at or before t), with each row's last change time. */
export function stateAt(changes: readonly Change[], t: bigint): Map<number, { row: Row; time: bigint }> {
  const state = new Map<number, { row: Row; time: bigint }>();
  for (const c of changes) {
    if (c.commitTime > t) break;
    if (c.op === 't') state.clear();
    else if (c.op === 'd') state.delete(c.before!.id as number);
    else {
      if (c.before) state.delete(c.before.id as number);
      state.set(c.after!.id as number, { row: c.after!, time: c.commitTime });
    }
  }
  return state;
}

/**
 * One batch through the stages the ingest engine runs (`framework/ingest/ingest-engine.ts`): its
 * schemas to the materializer (a view that does not fit its table is refused here), its feature rows
 * materialized, then batch and rows applied together.
 */
export async function applyBatch(log: ChangeLog, materializer: Materializer, batch: ChangeBatch): Promise<void> {
  materializer.addSchemas(batch.schemas);
  await log.apply(batch, materializer.materialize(batch));
}

/** A change log with the feature history of some definitions (see {@link openLogWithFeatures}). */
export interface LogWithFeatures {
  readonly log: DuckDBChangeLog;
  readonly materializer: Materializer;
  readonly path: string;
  /** {@link applyBatch} on this log. */
  apply(batch: ChangeBatch): Promise<void>;
}

/**
 * A change log with the history tables of `definitions`, open: in a fresh temp DuckDB file (reset for
 * `public.items`), or in the file at `path` as an earlier run left it (the definitions are checked and
 * new versions built from the log as it opens).
 */
export async function openLogWithFeatures(definitions: FeatureDefinitions, path?: string): Promise<LogWithFeatures> {
  const file = path ?? join(mkdtempSync(join(tmpdir(), 'featureflow-features-')), 'store.duckdb');
  const materializer = new Materializer(new FeatureRegistry(definitions));
  const log = new DuckDBChangeLog(file, {}, new HistoryTables(materializer));
  await log.open();
  if (!path) await log.reset({ tables: [ITEMS.table], point: 1000n });
  return { log, materializer, path: file, apply: (batch) => applyBatch(log, materializer, batch) };
}

/** The rows of an Arrow table as plain objects (for assertions). */
export function rowsOf(table: arrow.Table): Record<string, unknown>[] {
  return table.toArray().map((r) => ({ ...(r as { toJSON(): Record<string, unknown> }).toJSON() }));
}
