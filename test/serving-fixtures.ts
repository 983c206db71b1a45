/** Shared fixtures of the serving tests: two views of one entity, a scored service, a small TF.js model. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import pino from 'pino';
import { entity, featureService, featureView, float32, tensor, text } from '../framework/features/index.js';
import { FeatureRegistry } from '../framework/features/feature-registry.js';
import { Materializer } from '../framework/features/materialize.js';
import type { Prediction, PredictionSink } from '../framework/interfaces/prediction-sink.js';
import type { OnlineStore } from '../framework/interfaces/online-store.js';
import type { Scorer } from '../framework/interfaces/scorer.js';
import type { Change, ColumnSchema, Position, Row, VersionedSchema } from '../framework/types.js';
import { InProcessBus } from '../framework/serving/in-process-bus.js';
import { OnlineUpdater, type OnlineLoader } from '../framework/serving/online-updater.js';
import { ScoringLoop } from '../framework/serving/scoring-loop.js';
import { ServingContext } from '../framework/serving/serving-context.js';
import { saveModel, tfjs } from '../scorers/tfjs/index.js';

tf.enableProdMode();

export const item = entity({ name: 'item', keys: ['id'] });
/** `public.items(id int8, a float8, v0, v1, v2 float8, note text)` → a, v = [v0, v1, v2], note. */
export const items = featureView({
  name: 'items',
  version: 1,
  entity: item,
  source: 'public.items',
  features: { a: float32, v: tensor('float32', [3]), note: text },
  transform: (row) => ({
    a: row.a as number | null,
    v: [row.v0, row.v1, row.v2] as number[],
    note: (row.note as string | null) ?? null,
  }),
});
/** `public.extras(id int4, c float8)` → c; values older than an hour are expired. */
export const extras = featureView({
  name: 'extras',
  version: 1,
  entity: item,
  source: 'public.extras',
  features: { c: float32 },
  ttl: '1h',
});
/** The model's inputs: items.a, items.v (3 values), extras.c: 5 values. */
export const scored = featureService({ name: 'scored', features: [items.select('a', 'v'), extras] });
export const LABELS = ['low', 'mid', 'high'];

const col = (name: string, type: string, key = false): ColumnSchema => ({ name, type, array: false, typeOid: 0, key });
export const SCHEMAS: VersionedSchema[] = [
  {
    table: 'public.items',
    version: 1,
    keyColumns: ['id'],
    columns: [
      col('id', 'int8', true),
      col('a', 'float8'),
      col('v0', 'float8'),
      col('v1', 'float8'),
      col('v2', 'float8'),
      col('note', 'text'),
    ],
  },
  { table: 'public.extras', version: 1, keyColumns: ['id'], columns: [col('id', 'int4', true), col('c', 'float8')] },
];

/** Now, µs since the epoch. */
export const nowMicros = () => BigInt(Date.now()) * 1000n;

/** Changes at increasing positions. */
export class Changes {
  position = 0x100n;

  private next(): Position {
    this.position += 0x10n;
    return this.position;
  }

  private make(table: string, op: Change['op'], key: Row | null, after: Row | null, commitTime: bigint): Change {
    const position = this.next();
    return {
      table,
      op,
      key,
      before: op === 'd' ? key : null,
      after,
      position,
      commitPosition: position,
      commitTime,
      xid: 1,
      schemaVersion: 1,
    };
  }

  item(
    op: 'r' | 'c' | 'u',
    id: bigint,
    a: number,
    v: readonly number[],
    note: string | null = null,
    commitTime = nowMicros(),
  ): Change {
    return this.make('public.items', op, { id }, { id, a, v0: v[0]!, v1: v[1]!, v2: v[2]!, note }, commitTime);
  }

  extra(op: 'r' | 'c' | 'u', id: number, c: number, commitTime = nowMicros()): Change {
    return this.make('public.extras', op, { id }, { id, c }, commitTime);
  }

  delete(table: 'public.items' | 'public.extras', id: number | bigint): Change {
    return this.make(table, 'd', { id }, null, nowMicros());
  }

  truncate(table: 'public.items' | 'public.extras'): Change {
    return this.make(table, 't', null, null, nowMicros());
  }
}

/** The model's reference answer, run here (cpu) on one example of the service's 5 values. */
export function reference(model: tf.LayersModel, example: readonly number[]): number[] {
  const y = model.predict(tf.tensor2d([[...example]])) as tf.Tensor;
  const out = Array.from(y.dataSync());
  y.dispose();
  return out;
}

/** Asserts `actual` equals `expected` within float32 rounding. */
export function closeTo(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && actual.every((x, i) => Math.abs(x - expected[i]!) < 1e-5);
}

/** A dense softmax layer on the 5 inputs, saved with labels and a version. */
export async function saveTestModel(): Promise<{ model: tf.LayersModel; dir: string }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'featureflow-serving-')), 'scored-model');
  const model = tf.sequential();
  model.add(
    tf.layers.dense({
      inputShape: [5],
      units: 3,
      activation: 'softmax',
      kernelInitializer: 'glorotNormal',
      biasInitializer: 'randomNormal',
    }),
  );
  await saveModel(model, dir, { version: 'test-1', labels: LABELS });
  return { model, dir };
}

/** A prediction sink keeping what it is given, in memory: what a DuckDB or PostgreSQL sink would store. */
export class MemorySink implements PredictionSink {
  readonly predictions: Prediction[] = [];
  readonly throughs: (Position | null)[] = [];
  private mark: Position | null = null;

  async open(): Promise<void> {}

  async write(predictions: readonly Prediction[], through: Position | null): Promise<void> {
    this.predictions.push(...predictions);
    this.throughs.push(through);
    if (through !== null) this.mark = through;
  }

  async watermark(): Promise<Position | null> {
    return this.mark;
  }

  async close(): Promise<void> {}
}

/** Everything a serving test runs: store, scorer, context, loop, updater and bus, started. */
export interface Serving {
  readonly bus: InProcessBus;
  readonly materializer: Materializer;
  readonly context: ServingContext;
  readonly updater: OnlineUpdater;
  readonly loop: ScoringLoop;
  readonly sink: MemorySink;
  readonly scorer: Scorer;
  /** Materializes changes and publishes them, through the last one's position. */
  publish(changes: readonly Change[], through?: Position | null): Promise<void>;
  stop(): Promise<void>;
}

/** Builds and (unless `start: false`) starts the online side on `store`, scoring with the model in `modelDir`. */
export async function startServing(
  store: OnlineStore,
  modelDir: string,
  options: {
    readonly load?: OnlineLoader;
    readonly start?: boolean;
    readonly maxBackoffMs?: number;
    readonly probeIntervalMs?: number;
    readonly sink?: MemorySink;
    readonly maxQueuedRows?: number;
  } = {},
): Promise<Serving> {
  const logger = pino({ level: process.env.FEATUREFLOW_TEST_LOG ?? 'silent' });
  const registry = new FeatureRegistry({ views: [items, extras], services: [scored] });
  const materializer = new Materializer(registry);
  materializer.addSchemas(SCHEMAS);
  await store.open();
  const scorer = tfjs({ path: modelDir, service: scored }).create(logger);
  await scorer.open();
  const sink = options.sink ?? new MemorySink();
  const context = new ServingContext({
    store,
    registry,
    materializer,
    scorer,
    logger,
    metrics: { defaultMetrics: false },
  });
  const loop = new ScoringLoop(context, {
    sinks: [sink],
    maxBackoffMs: options.maxBackoffMs ?? 200,
    ...(options.maxQueuedRows ? { maxQueuedRows: options.maxQueuedRows } : {}),
  });
  const updater = new OnlineUpdater(context, {
    scoring: loop,
    maxBackoffMs: options.maxBackoffMs ?? 200,
    probeIntervalMs: options.probeIntervalMs ?? 100,
    ...(options.load ? { load: options.load } : {}),
  });
  const bus = new InProcessBus();
  loop.start();
  bus.subscribe(updater.listener);
  if (options.start ?? true) await updater.start();
  let stopped = false;
  return {
    bus,
    materializer,
    context,
    updater,
    loop,
    sink,
    scorer,
    async publish(changes, through) {
      const { batches } = materializer.materializeChanges(changes);
      await bus.publish({
        batches,
        through: through === undefined ? changes[changes.length - 1]!.position : through,
        receivedAt: Date.now(),
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await bus.close();
      await updater.stop();
      await loop.stop();
      context.close();
      await scorer.close();
      await store.close();
    },
  };
}
