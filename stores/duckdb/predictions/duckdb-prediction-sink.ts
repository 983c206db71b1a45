import { listValue, type DuckDBConnection } from '@duckdb/node-api';
import { entityId } from '../../../framework/features/entity-key.js';
import type { Prediction, PredictionSink } from '../../../framework/interfaces/prediction-sink.js';
import type { Position } from '../../../framework/types.js';
import { type ChunkColumn, ValidityMask } from '../chunk-columns.js';
import { insertStaged, type StagedChunk } from '../staged-insert.js';
import {
  ADVANCE_WATERMARK_SQL,
  INSERT_WATERMARK_SQL,
  PREDICTION_TYPES,
  PREDICTIONS_DDL,
  storedInRangeSql,
} from './prediction-tables.js';

/** Options of {@link DuckDBPredictionSink}. */
export interface DuckDBPredictionSinkOptions {
  /** The model whose watermark the sink keeps in `_prediction_watermarks` (the scorer's model name). */
  readonly model: string;
}

/** Rows per data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Predictions in the change log's DuckDB file (`_predictions`, see prediction-tables.ts), written on
 * a connection of the sink's own to the same instance, so its transactions never mix with the log's.
 * Each `write()` is one DuckDB transaction: the predictions and the model's watermark commit together
 * (a crash leaves both or neither), and a prediction stored already (same model, entity, position)
 * is not stored again, so re-scoring everything after the watermark never duplicates a row.
 *
 * @example
 * const sink = new DuckDBPredictionSink(() => log.openConnection(), { model: 'digits' });
 * await sink.open();
 * await sink.write(predictions, batch.position);
 */
export class DuckDBPredictionSink implements PredictionSink {
  readonly inStore = true;
  private connection: DuckDBConnection | undefined;
  /** The write in progress: writes run one at a time on the one connection. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** `connect` opens a connection to the DuckDB instance holding the change log (`DuckDBChangeLog.openConnection`). */
  constructor(
    private readonly connect: () => Promise<DuckDBConnection>,
    private readonly options: DuckDBPredictionSinkOptions,
  ) {}

  async open(): Promise<void> {
    if (this.connection) return;
    if (this.closed) throw new Error('the DuckDB prediction sink is closed');
    const c = await this.connect();
    try {
      await c.run(PREDICTIONS_DDL);
    } catch (error) {
      c.closeSync();
      throw error;
    }
    this.connection = c;
  }

  write(predictions: readonly Prediction[], through: Position | null): Promise<void> {
    const run = this.queue.then(() => this.writeNow(predictions, through));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeNow(predictions: readonly Prediction[], through: Position | null): Promise<void> {
    const c = this.live();
    const staged = distinct(predictions);
    if (staged.length === 0 && through === null) return;
    await c.run('BEGIN TRANSACTION');
    try {
      const rows = staged.length === 0 ? staged : await this.unstored(c, staged);
      if (rows.length > 0) await insertStaged(c, '_predictions', PREDICTION_TYPES, chunksOf(rows));
      if (through !== null) {
        const moved = await c.run(ADVANCE_WATERMARK_SQL, [this.options.model, BigInt(through)]);
        if (moved.rowsChanged === 0) await c.run(INSERT_WATERMARK_SQL, [this.options.model, BigInt(through)]);
      }
      await c.run('COMMIT');
    } catch (error) {
      await c.run('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /** The staged predictions not stored yet. */
  private async unstored(c: DuckDBConnection, staged: Staged[]): Promise<Staged[]> {
    let low = staged[0]!.position;
    let high = low;
    for (const row of staged) {
      if (row.position < low) low = row.position;
      if (row.position > high) high = row.position;
    }
    const models = [...new Set(staged.map((row) => row.prediction.model))];
    const stored = (await c.runAndReadAll(storedInRangeSql(models, low, high))).getRows() as [
      string,
      string,
      bigint,
      bigint,
    ][];
    if (stored.length === 0) return staged;
    const ids = new Set(
      stored.map(([model, entity, position, commitTime]) => identity(model, entity, BigInt(position), commitTime)),
    );
    return staged.filter(
      (row) => !ids.has(identity(row.prediction.model, row.entity, row.position, row.prediction.commitTime)),
    );
  }

  async watermark(): Promise<Position | null> {
    const rows = (
      await this.live().runAndReadAll('SELECT position FROM _prediction_watermarks WHERE model = $1', [
        this.options.model,
      ])
    ).getRows();
    return rows.length === 0 ? null : BigInt(rows[0]![0] as bigint);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.connection?.closeSync();
    this.connection = undefined;
  }

  private live(): DuckDBConnection {
    if (!this.connection)
      throw new Error(
        this.closed
          ? 'the DuckDB prediction sink is closed'
          : 'the DuckDB prediction sink is not open; call open() first',
      );
    return this.connection;
  }
}

/** The predictions without repeats of one identity: the first of each is kept. */
function distinct(predictions: readonly Prediction[]): Staged[] {
  const seen = new Set<string>();
  const out: Staged[] = [];
  for (const p of predictions) {
    const entity = entityId(p.key);
    const id = identity(p.model, entity, BigInt(p.position), p.commitTime);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ prediction: p, entity, position: BigInt(p.position) });
  }
  return out;
}

/**
 * A prediction's identity as text: (model, entity, position, commit time). The commit time tells a
 * snapshot's read of a row from a change of it that starts at the snapshot's very position.
 */
function identity(model: string, entity: string, position: bigint, commitTime: bigint): string {
  return `${model}\u0000${entity}\u0000${position}\u0000${commitTime}`;
}

/** A prediction with its identity computed. */
interface Staged {
  readonly prediction: Prediction;
  readonly entity: string;
  readonly position: bigint;
}

/** The rows in data chunks, made as they are read. */
function* chunksOf(rows: readonly Staged[]): Generator<StagedChunk> {
  for (let s = 0; s < rows.length; s += CHUNK_ROWS) {
    const e = Math.min(s + CHUNK_ROWS, rows.length);
    yield { length: e - s, columns: predictionColumns(rows, s, e) };
  }
}

/** Rows `[start, end)` column-wise, in the column order of `_predictions`. */
function predictionColumns(rows: readonly Staged[], start: number, end: number): ChunkColumn[] {
  const n = end - start;
  const keyInt = new BigInt64Array(n);
  const keyIntValid = new ValidityMask(n);
  const keyText: (string | null)[] = [];
  const argmax = new Int32Array(n);
  const argmaxValid = new ValidityMask(n);
  const position = new BigUint64Array(n);
  const commitTime = new BigInt64Array(n);
  const predictedAt = new BigInt64Array(n);
  const received = new Float64Array(n);
  const features = new Float64Array(n);
  const scored = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const { prediction: p, position: at } = rows[start + i]!;
    const only = p.key.length === 1 ? p.key[0] : undefined;
    const int =
      typeof only === 'number' && Number.isSafeInteger(only)
        ? BigInt(only)
        : typeof only === 'bigint' && only >= INT64_MIN && only <= INT64_MAX
          ? only
          : null;
    if (int === null) keyIntValid.setNull(i);
    else keyInt[i] = int;
    keyText.push(typeof only === 'string' ? only : null);
    if (p.argmax === undefined) argmaxValid.setNull(i);
    else argmax[i] = p.argmax;
    position[i] = at;
    commitTime[i] = p.commitTime;
    predictedAt[i] = BigInt(Math.round(p.predictedAt * 1000));
    received[i] = p.latency.receivedMs;
    features[i] = p.latency.featuresMs;
    scored[i] = p.latency.scoredMs;
  }
  const slice = rows.slice(start, end);
  return [
    { kind: 'values', values: slice.map((r) => r.prediction.model) },
    { kind: 'values', values: slice.map((r) => r.prediction.modelVersion) },
    { kind: 'values', values: slice.map((r) => r.entity) },
    { kind: 'fixed', data: keyInt, validity: keyIntValid.bytes },
    { kind: 'values', values: keyText },
    { kind: 'values', values: slice.map((r) => listValue(Array.from(r.prediction.output))) },
    { kind: 'fixed', data: argmax, validity: argmaxValid.bytes },
    { kind: 'values', values: slice.map((r) => r.prediction.label ?? null) },
    { kind: 'fixed', data: position },
    { kind: 'fixed', data: commitTime },
    { kind: 'fixed', data: predictedAt },
    { kind: 'fixed', data: received },
    { kind: 'fixed', data: features },
    { kind: 'fixed', data: scored },
  ];
}
