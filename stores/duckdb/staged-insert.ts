/**
 * Inserting rows with an INSERT that DuckDB plans and runs on its own threads. An appender's flush
 * (`flushSync`, `closeSync`) plans and runs the same insert on the calling thread, the event loop's:
 * ~0.4–1 ms of fixed cost plus the rows, stretched to 3–10 ms on a busy two-core machine, during
 * which a change that arrives waits (bench/serve-latency.ts). Here the rows are staged in this
 * process and read by `INSERT … SELECT * FROM _ff_staged_rows(id)`: DuckDB asks a table function
 * for each data chunk, which fills it here (a copy per column, see chunk-columns.ts), and does the
 * rest (the insert into the transaction's storage) on its thread while the event loop runs.
 */
import {
  BIGINT,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBDataChunk,
  DuckDBTableFunction,
  type DuckDBType,
  DuckDBTypeId,
} from '@duckdb/node-api';
import { type ChunkColumn, fillChunk } from './chunk-columns.js';
import { quoteIdent } from './duckdb-database.js';

/**
 * One data chunk's rows (at most DuckDB's vector size, 2048): column-wise, or written by `fill` into
 * the chunk (whose row count is set already), e.g. straight into its vectors.
 */
export type StagedChunk = ColumnChunk | { readonly length: number; fill(chunk: DuckDBDataChunk): void };

/** One data chunk's rows, column-wise (at most DuckDB's vector size, 2048). */
export interface ColumnChunk {
  readonly length: number;
  readonly columns: readonly ChunkColumn[];
}

/** The rows of one insert: the types of the target's columns (all of them, in order) and the chunks, made as DuckDB asks for them. */
interface Staged {
  readonly types: readonly DuckDBType[];
  readonly chunks: Iterator<StagedChunk>;
}

/**
 * Most rows a write stages; a write of more goes through an appender, which costs less per row,
 * unless it holds tensors (see {@link insertChunks}). A stream's commits in `serve` (a few hundred
 * rows every 250 ms) stay staged and leave the event loop free; bulk writes (a snapshot, a 1000-row
 * transaction streamed to Kafka) take the appender.
 */
const STAGED_MAX_ROWS = 512;

const FUNCTION = '_ff_staged_rows';
const staged = new Map<number, Staged>();
let nextId = 1;
/** The function registered in each database (through the connection that registered it). */
const registered = new WeakMap<DuckDBConnection, DuckDBTableFunction>();

function tableFunction(): DuckDBTableFunction {
  return DuckDBTableFunction.create({
    name: FUNCTION,
    parameterTypes: [BIGINT],
    bindFunction: (info) => {
      const id = Number(info.getParameter(0) as bigint);
      const rows = staged.get(id);
      if (!rows) {
        info.setError(`no rows are staged under ${id}`);
        return;
      }
      rows.types.forEach((type, i) => {
        info.addResultColumn(`c${i}`, type);
      });
      info.setBindData({ id });
    },
    initFunction: (info) => {
      // One scan in order: the rows go in as staged (insertion order is kept).
      info.setMaxThreads(1);
    },
    mainFunction: (info, output: DuckDBDataChunk) => {
      const next = staged.get((info.bindData as { id: number }).id)?.chunks.next();
      if (!next || next.done) {
        output.rowCount = 0;
        return;
      }
      const rows = next.value;
      if ('fill' in rows) {
        output.rowCount = rows.length;
        rows.fill(output);
      } else fillChunk(output, rows.length, rows.columns);
    },
  });
}

/**
 * Makes {@link insertStaged} work on every connection of `c`'s database. Once, at open, before any
 * transaction: registering writes the catalog, which conflicts with another transaction's write.
 */
export function registerStagedRows(c: DuckDBConnection): void {
  if (registered.has(c)) return;
  const fn = tableFunction();
  c.registerTableFunction(fn);
  registered.set(c, fn);
}

/**
 * Inserts `chunks` into `table` (whose columns are of `types`, all of them, in order, as an appender's) in the
 * connection's open transaction, or its own, in a database opened by `openDuckDB` (which calls
 * {@link registerStagedRows}). The chunks are made when DuckDB asks for them, on this
 * thread; a chunk of no rows is skipped.
 *
 * @example
 * await insertStaged(c, 'points', [BIGINT, DOUBLE], [{ length: 2, columns: [ids, xs] }]);
 */
export async function insertStaged(
  c: DuckDBConnection,
  table: string,
  types: readonly DuckDBType[],
  chunks: Iterable<StagedChunk>,
): Promise<void> {
  const id = nextId++;
  const source = chunks[Symbol.iterator]();
  const nonEmpty: Iterator<StagedChunk> = {
    next: () => {
      for (;;) {
        const r = source.next();
        if (r.done || r.value.length > 0) return r;
      }
    },
  };
  staged.set(id, { types, chunks: nonEmpty });
  try {
    await c.run(`INSERT INTO ${quoteIdent(table)} SELECT * FROM ${FUNCTION}(${id})`);
  } finally {
    staged.delete(id);
  }
}

/**
 * Inserts `rows` rows, made as `chunks`, into `table` (whose columns are of `types`): staged
 * ({@link insertStaged}) up to {@link STAGED_MAX_ROWS} rows while `keepThreadFree`, through an
 * appender ({@link appendChunks}) filling the caller's `chunk()` otherwise. Staged, the insert waits
 * for this thread to fill each chunk and to take the result (each a turn of the event loop, and
 * a hop between threads): commit → durable p50 at 1000 txn/s was 7.3–8.5 ms staged against 5.5–6.0
 * through appenders (bench/latency.ts, three runs each), and under a Kafka publisher a commit's
 * flush took 7–16 ms staged against 2–3 ms (bench/kafka.ts). Bulk writes of fixed-size arrays
 * (tensors) are staged too: the appender copies them into a collection of its own before inserting,
 * and the snapshot of 300k digit images peaked 25 MB lower staged, at the same speed (476–491 MB
 * against 502–517 MB, bench/images.ts, two runs each).
 */
export function insertChunks(
  c: DuckDBConnection,
  table: string,
  types: readonly DuckDBType[],
  rows: number,
  chunks: Iterable<StagedChunk>,
  chunk: () => DuckDBDataChunk,
  keepThreadFree = true,
): Promise<void> {
  const small = rows <= STAGED_MAX_ROWS;
  return (keepThreadFree && small) || (!small && types.some((t) => t.typeId === DuckDBTypeId.ARRAY))
    ? insertStaged(c, table, types, chunks)
    : appendChunks(c, table, chunk(), chunks);
}

/**
 * Inserts `chunks` into `table` through an appender, flushed on this thread: less work per row than
 * {@link insertStaged}, and no wait for this thread to fill each chunk, for bulk writes (1M feature
 * rows in batches of 10k: ~287k rows/s through the appender against ~250k staged,
 * bench/features-apply.ts). `chunk` (of `table`'s types) is filled for each: one kept by the caller,
 * since a data chunk's native buffers (6 MB for 2048 rows of a 784-float tensor) are freed only when
 * the collector finalizes it.
 */
export async function appendChunks(
  c: DuckDBConnection,
  table: string,
  chunk: DuckDBDataChunk,
  chunks: Iterable<StagedChunk>,
): Promise<void> {
  const appender = await c.createAppender(table);
  try {
    for (const rows of chunks) if (rows.length > 0) appendChunk(appender, chunk, rows);
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

/** Appends `rows` to `appender`, written into `chunk` (emptied first), which the appender copies. */
export function appendChunk(appender: DuckDBAppender, chunk: DuckDBDataChunk, rows: StagedChunk): void {
  if ('fill' in rows) {
    chunk.reset();
    chunk.rowCount = rows.length;
    rows.fill(chunk);
  } else fillChunk(chunk, rows.length, rows.columns);
  appender.appendDataChunk(chunk);
}
