import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type * as tf from '@tensorflow/tfjs';
import type { OnlineStore } from '../framework/interfaces/online-store.js';
import type { Prediction } from '../framework/interfaces/prediction-sink.js';
import type { FeedEvent } from '../framework/serving/prediction-feed.js';
import { memory } from '../stores/memory/index.js';
import { redis } from '../stores/redis/index.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { randomName, waitFor } from './helpers.js';
import {
  Changes,
  closeTo,
  extras,
  items,
  LABELS,
  MemorySink,
  reference,
  saveTestModel,
  startServing,
  type Serving,
} from './serving-fixtures.js';

// The online path end to end with real components: the in-process bus, the online updater, a real
// online store (memory, then Redis), the TF.js scorer in worker threads, the scoring loop, the feed
// and a sink. The oracle is model.predict run here on the features each change gave.

let server: RedisServer;
let model: tf.LayersModel;
let modelDir: string;

beforeAll(async () => {
  server = await startRedis();
  ({ model, dir: modelDir } = await saveTestModel());
});

afterAll(async () => {
  await server?.stop();
});

const STORES: Record<string, () => OnlineStore> = {
  memory: () => memory().create(),
  redis: () => redis({ url: server.url, prefix: randomName('ff') }).create(),
};

/** The online values of the items view, by id. */
async function itemValues(s: Serving, ids: number[]) {
  return s.context.store.read(
    items,
    ids.map((id) => [id]),
  );
}

describe.each(Object.keys(STORES))('bus → updater → %s online store → scoring → feed', (kind) => {
  let s: Serving;
  const events: FeedEvent[] = [];

  beforeAll(async () => {
    s = await startServing(STORES[kind]!(), modelDir);
    s.context.feed.subscribe({ onEvent: (e) => events.push(e) });
  });

  afterAll(async () => {
    await s?.stop();
  });

  test('inserts, updates, deletes and truncates give the right online values and one prediction per change with values, in order', async () => {
    const changes = new Changes();
    const extra = [1, 2, 3].map((id) => changes.extra('c', id, id / 10));
    await s.publish(extra);
    // items 1…3 have extras; item 4 has none: no prediction for it, counted as skipped.
    const inserted = [1n, 2n, 3n, 4n].map((id) => changes.item('c', id, Number(id), [Number(id), 0.5, -1], `n${id}`));
    await s.publish(inserted);
    // Two updates of item 2 in one transaction, then a delete of item 3.
    const first = changes.item('u', 2n, 20, [0.1, 0.2, 0.3]);
    const second = changes.item('u', 2n, 21, [0.4, 0.5, 0.6]);
    const deleted = changes.delete('public.items', 3n);
    await s.publish([first, second, deleted]);
    await s.loop.idle();

    // Extras made no prediction (the items were not there yet); items 1…3 and the two updates did.
    const made = s.sink.predictions;
    expect(made.map((p) => [p.key[0], p.position])).toEqual([
      [1n, inserted[0]!.position],
      [2n, inserted[1]!.position],
      [3n, inserted[2]!.position],
      [2n, first.position],
      [2n, second.position],
    ]);
    // Each prediction is the model's output on the features of its own change.
    const example = (a: number, v: number[], c: number) => [a, ...v, c];
    const expected = [
      example(1, [1, 0.5, -1], 0.1),
      example(2, [2, 0.5, -1], 0.2),
      example(3, [3, 0.5, -1], 0.3),
      example(20, [0.1, 0.2, 0.3], 0.2),
      example(21, [0.4, 0.5, 0.6], 0.2),
    ];
    made.forEach((p, i) => {
      const want = reference(model, expected[i]!);
      expect(closeTo(p.output, want), `prediction ${i}: ${p.output} vs ${want}`).toBe(true);
      expect(p.argmax).toBe(want.indexOf(Math.max(...want)));
      expect(p.label).toBe(LABELS[p.argmax!]);
      expect(p).toMatchObject({ model: 'scored-model', modelVersion: 'test-1' });
      expect(p.latency.featuresMs).toBeGreaterThanOrEqual(0);
      expect(p.latency.scoredMs).toBeGreaterThanOrEqual(0);
    });
    // The feed holds the same predictions, with increasing ids.
    expect(events.map((e) => e.prediction)).toEqual(made);
    expect(events.every((e, i) => i === 0 || e.id === events[i - 1]!.id + 1)).toBe(true);
    // The sink heard each message's through once its predictions were made.
    expect(s.sink.throughs.filter((t) => t !== null).pop()).toBe(deleted.position);
    const skipped = await s.context.metrics.predictionsSkipped.get();
    expect(skipped.values.find((v) => v.labels.reason === 'missing_feature')?.value).toBe(3 + 1);

    // Online values: item 2 holds its second update, item 3 is gone (its deletion's position kept).
    const [one, two, three, four] = await itemValues(s, [1, 2, 3, 4]);
    expect(one).toMatchObject({ status: 'ok', position: inserted[0]!.position });
    expect(two!.status).toBe('ok');
    expect(two!.values![0]).toBe(21);
    expect(Array.from(two!.values![1] as Float32Array)).toEqual([Math.fround(0.4), Math.fround(0.5), Math.fround(0.6)]);
    expect(two!.position).toBe(second.position);
    expect(three).toMatchObject({ status: 'missing', values: null, position: deleted.position });
    expect(four!.status).toBe('ok');
    expect(await s.context.store.watermark(items)).toBe(deleted.position);
    expect(s.context.board.get(extras)).toBe(deleted.position);

    // A truncate clears the view and predicts nothing; an insert after it predicts again.
    const truncated = changes.truncate('public.items');
    await s.publish([truncated]);
    const again = changes.item('c', 1n, 7, [7, 7, 7]);
    await s.publish([again]);
    await s.loop.idle();
    expect((await itemValues(s, [2, 4])).map((v) => v.status)).toEqual(['missing', 'missing']);
    expect((await itemValues(s, [1]))[0]).toMatchObject({ status: 'ok', position: again.position });
    expect(made.length).toBe(6);
    const last = made[5]!;
    expect(last.position).toBe(again.position);
    expect(closeTo(last.output, reference(model, [7, 7, 7, 7, 0.1]))).toBe(true);
    expect(await s.context.store.count(items)).toBe(1);
  });

  test('watermark waiters resolve when the position is written, and time out otherwise', async () => {
    const changes = new Changes();
    changes.position = 0x10000n;
    const target = changes.position + 0x10n;
    const waiting = s.context.board.waitFor(items, target, 5_000);
    expect(await s.context.board.waitFor(items, target, 20)).toBe(false);
    await s.publish([changes.extra('u', 1, 0.5)]);
    expect(await waiting).toBe(true);
    expect(await s.context.board.waitFor(extras, target, 0)).toBe(true);
    expect(s.context.board.waiting).toBe(0);
  });

  test('a message without `through` writes rows but moves no watermark; predictions keep entity order across messages', async () => {
    const changes = new Changes();
    changes.position = 0x20000n;
    const before = s.context.board.get(items)!;
    const burst = Array.from({ length: 40 }, (_, i) => changes.item('u', BigInt(1 + (i % 2)), i, [i, i, i]));
    await s.publish(burst.slice(0, 20), null);
    expect(s.context.board.get(items)).toBe(before);
    await s.publish(burst.slice(20));
    await s.loop.idle();
    const tail = s.sink.predictions.slice(-40);
    expect(tail.map((p) => p.position)).toEqual(burst.map((c) => c.position));
    const byEntity = (id: bigint) => tail.filter((p: Prediction) => p.key[0] === id).map((p) => p.position);
    for (const id of [1n, 2n]) expect(byEntity(id)).toEqual([...byEntity(id)].sort((a, b) => (a < b ? -1 : 1)));
    expect(s.context.board.get(items)).toBe(burst[39]!.position);
  });
});

test('an expired feature of another view makes no prediction, counted as expired', async () => {
  const s = await startServing(memory().create(), modelDir);
  try {
    const changes = new Changes();
    const twoHoursAgo = BigInt(Date.now() - 2 * 3_600_000) * 1000n;
    await s.publish([changes.extra('c', 9, 0.9, twoHoursAgo)]);
    await s.publish([changes.item('c', 9n, 1, [1, 1, 1])]);
    await s.loop.idle();
    expect(s.sink.predictions).toEqual([]);
    const skipped = await s.context.metrics.predictionsSkipped.get();
    expect(skipped.values.find((v) => v.labels.reason === 'expired_feature')?.value).toBe(1);
    expect((await s.context.store.read(extras, [[9]]))[0]!.status).toBe('expired');
  } finally {
    await s.stop();
  }
});

test('messages published before start wait for the load, then flow', async () => {
  const s = await startServing(memory().create(), modelDir, { start: false });
  try {
    const changes = new Changes();
    const publishing = s.publish([changes.extra('c', 1, 0.1)]);
    let done = false;
    void publishing.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    expect(s.context.health.report()).toMatchObject({ ready: false, reason: 'the online store is loading' });
    await s.updater.start();
    await publishing;
    expect(s.context.health.report()).toMatchObject({ ready: true, status: 'ready' });
    await s.publish([changes.item('c', 1n, 1, [1, 2, 3])]);
    await s.loop.idle();
    expect(s.sink.predictions.length).toBe(1);
  } finally {
    await s.stop();
  }
});

/** A sink that holds every write until released: a slow database. */
class GatedSink extends MemorySink {
  private readonly gate: Promise<void>;
  readonly release: () => void;
  writes = 0;

  constructor() {
    super();
    let release!: () => void;
    this.gate = new Promise((resolve) => (release = resolve));
    this.release = release;
  }

  override async write(predictions: readonly Prediction[], through: bigint | null): Promise<void> {
    this.writes++;
    await this.gate;
    await super.write(predictions, through);
  }
}

test('a full scoring queue makes the bus wait (back-pressure), and nothing is dropped', async () => {
  const sink = new GatedSink();
  const s = await startServing(memory().create(), modelDir, { sink, maxQueuedRows: 4 });
  try {
    const changes = new Changes();
    await s.publish([changes.extra('c', 1, 0.1)]);
    const updates = Array.from({ length: 12 }, (_, i) => changes.item('u', 1n, i, [i, i, i]));
    // One message per update: the loop holds the first message (its sink write waits), and the queue fills.
    let published = 0;
    const publishing = (async () => {
      for (const u of updates) {
        await s.publish([u]);
        published++;
      }
    })();
    await waitFor('the queue to fill', () => s.loop.queued === 4);
    const before = published;
    await new Promise((r) => setTimeout(r, 100));
    expect(published).toBe(before);
    expect(published).toBeLessThan(12);
    expect(s.loop.queued).toBe(4);
    expect(sink.writes).toBe(1);
    sink.release();
    await publishing;
    await s.loop.idle();
    expect(sink.predictions.map((p) => p.position)).toEqual(updates.map((u) => u.position));
  } finally {
    sink.release();
    await s.stop();
  }
});
