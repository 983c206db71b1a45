import { BIGINT, DOUBLE, FLOAT, INTEGER, LIST, TIMESTAMPTZ, UBIGINT, VARCHAR } from '@duckdb/node-api';
import { quoteLiteral } from '../duckdb-database.js';

/**
 * The DuckDB prediction sink's tables, in the change log's file.
 *
 * `_predictions` keeps every prediction (an append-only log, like the feature history): which model
 * (name and version) scored which entity at which position, its output, and the latency of each
 * stage. `entity` is the key's identity text (`entityId`: `42`, `"a"`, `1,"x"`), the same for an int4
 * and an int8 key; a key of one integer is also in `key_int`, a key of one string in `key_text`, so
 * SQL can join predictions to a table without parsing. A prediction's identity is (model, entity,
 * position, commit time): a replay stores nothing twice. (The commit time tells a snapshot's read of a
 * row from a change of the row whose record starts at the snapshot's very position.)
 *
 * `_prediction_watermarks` holds per model the position through which every prediction is written;
 * it moves in the same transaction as the predictions.
 */
export const PREDICTIONS_DDL = `
CREATE TABLE IF NOT EXISTS _predictions (
  model VARCHAR NOT NULL,
  model_version VARCHAR NOT NULL,
  entity VARCHAR NOT NULL,
  key_int BIGINT,
  key_text VARCHAR,
  output FLOAT[] NOT NULL,
  argmax INTEGER,
  label VARCHAR,
  position UBIGINT NOT NULL,
  commit_time TIMESTAMPTZ NOT NULL,
  predicted_at TIMESTAMPTZ NOT NULL,
  received_ms DOUBLE,
  features_ms DOUBLE,
  scored_ms DOUBLE
);
CREATE TABLE IF NOT EXISTS _prediction_watermarks (
  model VARCHAR PRIMARY KEY,
  position UBIGINT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
`;

/** The column types of `_predictions`, in order, for the data chunks that insert predictions. */
export const PREDICTION_TYPES = [
  VARCHAR,
  VARCHAR,
  VARCHAR,
  BIGINT,
  VARCHAR,
  LIST(FLOAT),
  INTEGER,
  VARCHAR,
  UBIGINT,
  TIMESTAMPTZ,
  TIMESTAMPTZ,
  DOUBLE,
  DOUBLE,
  DOUBLE,
];

/**
 * The identities (model, entity, position, commit time in µs) of the stored predictions of `models`
 * with a position in `[low, high]`: those a write must not store again. Positions grow as rows are appended, so DuckDB's zone maps skip the
 * older row groups (the bounds are literals for that) and the check costs about the write's own size:
 * nothing, for a write of new positions.
 */
export function storedInRangeSql(models: readonly string[], low: bigint, high: bigint): string {
  return (
    `SELECT model, entity, position, epoch_us(commit_time) FROM _predictions WHERE position BETWEEN ${low}::UBIGINT AND ${high}::UBIGINT ` +
    `AND model IN (${models.map(quoteLiteral).join(', ')})`
  );
}

/** Moves a model's watermark forward; it never goes back (a replay of older predictions leaves it). */
export const ADVANCE_WATERMARK_SQL =
  'UPDATE _prediction_watermarks SET position = greatest(position, $2::UBIGINT), updated_at = now() WHERE model = $1';

/** A model's first watermark. */
export const INSERT_WATERMARK_SQL = 'INSERT INTO _prediction_watermarks VALUES ($1, $2::UBIGINT, now())';
