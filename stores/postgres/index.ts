import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import type { PredictionsAdapter } from '../../framework/config.js';
import type { PredictionSink } from '../../framework/interfaces/index.js';
import { TOKENS } from '../../framework/tokens.js';
import { PostgresPredictionSink } from './postgres-prediction-sink.js';
import {
  resolvePostgresPredictionsConfig,
  type PostgresPredictionsConfig,
  type ResolvedPostgresPredictionsConfig,
} from './postgres-predictions-config.js';

export type {
  PostgresPredictionsConfig,
  PredictionColumn,
  ResolvedPostgresPredictionsConfig,
} from './postgres-predictions-config.js';
export { POSTGRES_PREDICTIONS_ERRORS } from './postgres-predictions-errors.js';

/** The PostgreSQL prediction sink as the config holds it: its resolved settings and its container module. */
export interface PostgresPredictions extends PredictionsAdapter {
  readonly name: 'postgres';
  readonly config: ResolvedPostgresPredictionsConfig;
  /** A new sink (connected by its `open()`); `logger` is the parent of its `postgres-predictions` logger. */
  create(logger?: Logger): PredictionSink;
}

/**
 * Writes each entity's newest prediction into a PostgreSQL table, upserted by the entity's key and
 * guarded by position, so applications read predictions next to their own rows. A missing table is
 * created at the first prediction, in this layout (key columns first, then the prediction; a column
 * may be renamed with `columns`):
 *
 * ```sql
 * CREATE TABLE digit_predictions (
 *   id bigint NOT NULL,                -- keyColumns, in the entity's key order
 *   model text NOT NULL, model_version text NOT NULL,
 *   label text,                        -- the class label, where the model has labels
 *   argmax integer,                    -- the index of the largest output (the digit)
 *   probability double precision,      -- output[argmax] (or the single output)
 *   output real[] NOT NULL,            -- the model's output, flat
 *   position pg_lsn NOT NULL,          -- the change whose features were scored: the upsert's guard
 *   commit_time timestamptz NOT NULL,  -- when that change committed
 *   predicted_at timestamptz NOT NULL,
 *   received_ms double precision, features_ms double precision, scored_ms double precision,
 *   PRIMARY KEY (id)
 * );
 * ```
 *
 * With `keep: 'every'` the table keeps every prediction instead, keyed by `(id, position, commit_time)` (a
 * prediction made again after a crash is not stored twice).
 *
 * An existing table is written as it is: its key columns must be its primary key (or a unique index)
 * and it needs the position column; the other columns are written where it has them. The watermark
 * (through which position every prediction is written) is kept in `featureflow_prediction_watermarks`
 * in the table's schema, moved by the same statement. One table holds one model's predictions.
 *
 * @example
 * defineConfig({ source, features, model: tfjs({ path: 'model', service: digits }),
 *   predictions: [postgresPredictions({ table: 'digit_predictions', keyColumns: { id: 'integer' } })] });
 */
export function postgresPredictions(config: PostgresPredictionsConfig): PostgresPredictions {
  const resolved = resolvePostgresPredictionsConfig(config);
  const create = (logger?: Logger) =>
    new PostgresPredictionSink(resolved, logger?.child({ component: 'postgres-predictions' }));
  return Object.freeze({
    kind: 'predictions' as const,
    name: 'postgres' as const,
    config: resolved,
    create,
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.PredictionSink)
        .toResolvedValue((logger) => create(logger), [TOKENS.Logger])
        .inSingletonScope()
        .onDeactivation((sink) => sink.close());
    }),
  });
}
