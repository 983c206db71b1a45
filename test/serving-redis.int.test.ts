import type * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OnlineLoader } from '../framework/serving/online-updater.js';
import { buildHttpApp } from '../framework/serving/http-app.js';
import { formatPosition, type Change } from '../framework/types.js';
import { redis } from '../stores/redis/index.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { randomName, waitFor } from './helpers.js';
import {
  Changes,
  closeTo,
  extras,
  items,
  reference,
  saveTestModel,
  startServing,
  type Serving,
} from './serving-fixtures.js';

// The online store failing under the serving side: a real redis-server killed mid-run and started
// again (empty: it keeps nothing on disk). Health says why it is not ready meanwhile; once Redis is
// back, the views are loaded again from the "offline store" (here: the changes published so far, up
// to where a lagging offline store would be) and the rows written since are written again.

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

/** An offline store of the published changes: it holds those up to `through` (it lags the online path). */
function offlineStore() {
  const published: Change[] = [];
  const offline = { published, through: -1n, loads: 0, serving: undefined as Serving | undefined };
  const load: OnlineLoader = async (view, store) => {
    offline.loads++;
    const rows = published.filter((c) => c.position <= offline.through);
    const { batches } = offline.serving!.materializer.materializeChanges(rows, [view]);
    if (batches.length > 0) await store.write(batches);
    return offline.through < 0n ? null : offline.through;
  };
  return { offline, load };
}

const store = () =>
  redis({
    url: server.url,
    prefix: randomName('ff'),
    maxReconnectDelayMs: 50,
    connectTimeoutMs: 500,
    commandTimeoutMs: 1_000,
  }).create();

test('Redis killed mid-run: /health is 503 with the reason, reads are 503; once it is back nothing is lost', async () => {
  const { offline, load } = offlineStore();
  const s = await startServing(store(), modelDir, { load, start: false, maxBackoffMs: 100, probeIntervalMs: 50 });
  offline.serving = s;
  const http = await buildHttpApp(s.context);
  const { url } = await http.listen({ port: 0 });
  const publish = (changes: Change[]) => {
    offline.published.push(...changes);
    return s.publish(changes);
  };
  try {
    await s.updater.start();
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const changes = new Changes();
    const a = [1, 2, 3].map((id) => changes.extra('c', id, id / 10));
    await publish(a);
    const b = [1n, 2n, 3n].map((id) => changes.item('c', id, Number(id), [1, 2, 3]));
    await publish(b);
    await s.loop.idle();
    expect(s.sink.predictions.length).toBe(3);
    // The offline store has committed the extras, not yet the items.
    offline.through = a[2]!.position;

    await server.kill();
    const update = changes.item('u', 1n, 10, [4, 5, 6]);
    let published = false;
    const publishing = publish([update]).then(() => (published = true));
    await waitFor(
      '/health to say why it is not ready',
      async () => (await fetch(`${url}/health`)).status === 503,
      10_000,
    );
    const health = (await (await fetch(`${url}/health`)).json()) as { reason: string };
    expect(health).toMatchObject({ status: 'not_ready', ready: false, loaded: true });
    expect(health.reason).toMatch(/online store/);
    expect(health.reason).toMatch(/FF_ONLINE_UNREACHABLE/);
    const read = await fetch(`${url}/features/items/1`);
    expect(read.status).toBe(503);
    expect(((await read.json()) as { code: string }).code).toBe('FF_ONLINE_UNREACHABLE');
    // The bus waits (the ingest would too) while the row cannot be written.
    expect(published).toBe(false);
    const errors = await s.context.metrics.onlineWriteErrors.get();
    expect(errors.values[0]!.value).toBeGreaterThan(0);

    await server.start();
    await publishing;
    await waitFor('/health to be ready again', async () => (await fetch(`${url}/health`)).status === 200, 15_000);
    expect(offline.loads).toBeGreaterThanOrEqual(3);

    // Nothing lost: the extras from the offline store, the items from the rows kept since, the update on top.
    const itemsNow = await s.context.store.read(items, [[1], [2], [3]]);
    expect(itemsNow.map((v) => [v.status, v.position])).toEqual([
      ['ok', update.position],
      ['ok', b[1]!.position],
      ['ok', b[2]!.position],
    ]);
    expect(itemsNow[0]!.values![0]).toBe(10);
    const extrasNow = await s.context.store.read(extras, [[1], [2], [3]]);
    expect(extrasNow.map((v) => v.status)).toEqual(['ok', 'ok', 'ok']);
    expect(await s.context.store.watermark(items)).toBe(update.position);
    expect(await s.context.store.watermark(extras)).toBe(update.position);
    const body = (await (await fetch(`${url}/features/items/1`)).json()) as object;
    expect(body).toMatchObject({ status: 'ok', values: { a: 10 }, watermark: formatPosition(update.position) });

    // The update was scored once the store was back, on its own features.
    await s.loop.idle();
    expect(s.sink.predictions.length).toBe(4);
    const last = s.sink.predictions[3]!;
    expect(last.position).toBe(update.position);
    expect(closeTo(last.output, reference(model, [10, 4, 5, 6, 0.1]))).toBe(true);

    // Later changes flow as before.
    const after = changes.item('u', 2n, 20, [0, 0, 0]);
    await publish([after]);
    expect((await s.context.store.read(items, [[2]]))[0]).toMatchObject({ status: 'ok', position: after.position });
  } finally {
    await http.close();
    await s.stop();
  }
});

test('Redis restarted empty between writes: the probe notices, and the views are loaded again', async () => {
  const { offline, load } = offlineStore();
  const s = await startServing(store(), modelDir, { load, start: false, maxBackoffMs: 100, probeIntervalMs: 50 });
  offline.serving = s;
  try {
    await s.updater.start();
    const changes = new Changes();
    const rows = [changes.extra('c', 1, 0.5), changes.item('c', 1n, 1, [1, 1, 1])];
    offline.published.push(...rows);
    await s.publish(rows);
    offline.through = rows[1]!.position;
    await server.restart();
    await waitFor(
      'the reload',
      async () =>
        (await s.context.store.watermark(items).catch(() => null)) === rows[1]!.position &&
        s.context.health.report().ready,
      15_000,
    );
    expect((await s.context.store.read(items, [[1]]))[0]).toMatchObject({ status: 'ok', position: rows[1]!.position });
    expect((await s.context.store.read(extras, [[1]]))[0]).toMatchObject({ status: 'ok', position: rows[0]!.position });
  } finally {
    await s.stop();
  }
});

test('Redis down when the updater starts: not ready with the reason until it is back, then loaded', async () => {
  const { offline, load } = offlineStore();
  const s = await startServing(store(), modelDir, { load, start: false, maxBackoffMs: 100, probeIntervalMs: 50 });
  offline.serving = s;
  try {
    await server.kill();
    const starting = s.updater.start();
    await waitFor('the start to fail for now', () => s.context.health.problem('online-store') !== null, 10_000);
    expect(s.context.health.report()).toMatchObject({ ready: false, loaded: false });
    expect(s.context.health.report().reason).toMatch(
      /checking whether items@1 needs a load failed \(FF_ONLINE_UNREACHABLE/,
    );
    await server.start();
    await starting;
    expect(s.context.health.report()).toMatchObject({ ready: true, loaded: true });
    expect(offline.loads).toBe(2);
  } finally {
    await s.stop();
  }
});
