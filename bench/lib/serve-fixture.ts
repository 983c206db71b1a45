/**
 * What the `featureflow serve` benchmarks serve: a table of points (`id int4`, `x`, `y float8`), one
 * view of their two features, a service of it, and a small dense classifier of the two, trained and
 * saved by the benchmark, so that the figures are about the pipeline rather than the model.
 */
import * as tf from '@tensorflow/tfjs';
import {
  defineConfig,
  duckdb,
  entity,
  featureService,
  featureView,
  float32,
  kafkaBus,
  memory,
  postgres,
  postgresPredictions,
  redis,
  resolve,
  saveModel,
  tfjs,
  type ResolvedConfig,
} from '../../index.js';
import type { PacedInsert } from './paced-inserts.js';

/** The name of the view (and the model) the benchmarks serve. */
export const VIEW = 'bench_points';
export const MODEL = 'bench_classify';

/** DDL of a points table. */
export function pointsTableDdl(table: string): string {
  return `CREATE TABLE ${table} (id int4 PRIMARY KEY, x float8 NOT NULL, y float8 NOT NULL)`;
}

/** A single-row insert into a points table, with random features. */
export function pointInsert(table: string): PacedInsert {
  return {
    name: `bench-serve-insert-${table}`,
    text: `INSERT INTO ${table} (id, x, y) VALUES ($1, $2, $3)`,
    values: (id) => [id, Math.random() - 0.5, Math.random() - 0.5],
  };
}

/**
 * Trains a dense net 2-16-2 (softmax) for a few epochs on whether x·y > 0 and saves it in `dir`.
 * The pure-JS backend: the serve process picks its own (as `backend: 'auto'` does).
 */
export async function trainModel(dir: string): Promise<void> {
  await tf.setBackend('cpu');
  tf.enableProdMode();
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5;
  const points = Array.from({ length: 512 }, () => [random(), random()] as const);
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 16, inputShape: [2], activation: 'relu' }),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
  const x = tf.tensor2d(points.map((p) => [...p]));
  const y = tf.oneHot(
    tf.tensor1d(
      points.map(([a, b]) => (a * b > 0 ? 1 : 0)),
      'int32',
    ),
    2,
  );
  await model.fit(x, y, { epochs: 20, batchSize: 64, verbose: 0 });
  x.dispose();
  y.dispose();
  await saveModel(model, dir, { version: 'bench-1', labels: ['opposite', 'same'] });
  model.dispose();
}

/** Where a serve process reads, writes and listens. */
export interface ServeSpec {
  /** The PostgreSQL connection string. */
  url: string;
  /** The points table (its view is {@link VIEW}). */
  table: string;
  slot: string;
  /** The model directory written by {@link trainModel}. */
  modelDir: string;
  /** The DuckDB file. */
  storePath: string;
  /**
   * Scale-out serving: the change bus on Kafka, a shared Redis online store and a shared PostgreSQL
   * predictions table; `ingest` makes this process also read the source (`serve --ingest`).
   */
  kafka?: {
    brokers: string[];
    topicPrefix: string;
    group: string;
    redisUrl: string;
    predictions: string;
    ingest: boolean;
  };
  /** `ingest.commitIntervalMs`; unset, its default. */
  commitIntervalMs?: number;
}

/**
 * The configuration `featureflow serve` would load for `spec`: memory online store (or, scaled out,
 * a Kafka bus, Redis and a PostgreSQL predictions table), HTTP on a free port.
 */
export function serveConfig(spec: ServeSpec): ResolvedConfig {
  const view = featureView({
    name: VIEW,
    version: 1,
    entity: entity({ name: 'point', keys: ['id'] }),
    source: spec.table,
    features: { x: float32, y: float32 },
  });
  const service = featureService({ name: MODEL, features: [view] });
  return resolve(
    defineConfig({
      source: postgres({ connectionString: spec.url, tables: [spec.table], slot: spec.slot }),
      store: duckdb({ path: spec.storePath }),
      ...(spec.kafka
        ? {
            online: redis({ url: spec.kafka.redisUrl }),
            bus: kafkaBus({
              brokers: spec.kafka.brokers,
              topicPrefix: spec.kafka.topicPrefix,
              group: spec.kafka.group,
            }),
            predictions: [postgresPredictions({ table: spec.kafka.predictions, connectionString: spec.url })],
          }
        : { online: memory() }),
      model: tfjs({ path: spec.modelDir, service, name: MODEL }),
      features: { views: [view], services: [service] },
      ingest: {
        heartbeatSeconds: 1,
        ...(spec.commitIntervalMs === undefined ? {} : { commitIntervalMs: spec.commitIntervalMs }),
      },
      serve: { port: 0 },
      logLevel: process.env.FEATUREFLOW_LOG_LEVEL ?? 'warn',
    }),
  );
}
