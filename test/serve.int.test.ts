import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Container } from 'inversify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { entity, featureService, featureView, float32 } from '../framework/features/index.js';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  formatPosition,
  memory,
  parsePosition,
  postgres,
  ServeRuntime,
  saveModel,
  TOKENS,
  tfjs,
} from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, pgUrl, randomName, waitFor } from './helpers.js';

// `featureflow serve` in one process against the real services: a row committed in PostgreSQL
// reaches the online store, the model and the live stream; deletes and truncates too; and the online
// values equal the offline history's at the same position.

tf.enableProdMode();

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** A classifier of two inputs into three classes, with fixed weights (so predictions are known). */
async function model(): Promise<{ dir: string; layers: tf.LayersModel }> {
  const layers = tf.sequential();
  layers.add(tf.layers.dense({ units: 3, inputShape: [2], activation: 'softmax', useBias: true }));
  layers.setWeights([
    tf.tensor2d([
      [1, -1, 0.5],
      [-0.5, 1, 0.25],
    ]),
    tf.tensor1d([0, 0.1, -0.1]),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-model-'));
  await saveModel(layers, dir, { version: 'v1', labels: ['a', 'b', 'c'] });
  return { dir, layers };
}

function predict(layers: tf.LayersModel, x: number, y: number): number[] {
  const out = layers.predict(tf.tensor2d([[x, y]])) as tf.Tensor;
  return Array.from(out.dataSync());
}

interface Started {
  readonly runtime: ServeRuntime;
  readonly container: Container;
  readonly stop: () => Promise<void>;
  readonly ingest: Promise<unknown>;
}

async function serve(table: string, dir: string, store: string): Promise<Started> {
  const point = entity({ name: 'point', keys: ['id'] });
  const points = featureView({
    name: 'points',
    version: 1,
    entity: point,
    source: table,
    features: { x: float32, y: float32 },
  });
  const service = featureService({ name: 'classify', features: [points] });
  const config = defineConfig({
    source: postgres({ connectionString: pgUrl(), tables: [table], slot: randomName('slot') }),
    store: duckdb({ path: store }),
    online: memory(),
    model: tfjs({ path: dir, service, name: 'classify' }),
    features: { views: [points], services: [service] },
    ingest: { heartbeatSeconds: 1 },
    serve: { port: 0 },
    logLevel: 'silent',
  });
  const container = await createContainer(config, { serving: true });
  const runtime = await ServeRuntime.start(container, Object.freeze({ ...config }) as never);
  const controller = new AbortController();
  const ingest = runtime.run({ signal: controller.signal });
  return {
    runtime,
    container,
    ingest,
    async stop() {
      controller.abort();
      await ingest;
      await runtime.stop();
      await closeContainer(container);
    },
  };
}

async function get(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

/** Reads the SSE stream into `events` until aborted. */
function listen(url: string, events: any[], signal: AbortSignal): Promise<void> {
  return (async () => {
    const res = await fetch(url, { signal, headers: { accept: 'text/event-stream' } });
    const reader = res.body!.getReader();
    let text = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data:'));
          if (data && /^event: prediction/m.test(block)) events.push(JSON.parse(data.slice(5)));
          else if (data && !/^event:/m.test(block)) events.push(JSON.parse(data.slice(5)));
        }
      }
    } catch {
      // Aborted.
    }
  })();
}

describe('featureflow serve', () => {
  test('insert, update, delete, truncate in PostgreSQL reach the online store, the model, the stream and the predictions table, in order', async () => {
    const table = randomName('points');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0.5, 0.25), (2, -1, 2)`);
    const { dir, layers } = await model();
    const store = join(mkdtempSync(join(tmpdir(), 'featureflow-serve-')), 'store.duckdb');
    const s = await serve(table, dir, store);
    const base = s.runtime.url;
    const events: any[] = [];
    const controller = new AbortController();
    let stream: Promise<void> | undefined;
    try {
      await waitFor('health', async () => (await fetch(`${base}/health`)).status === 200);
      // The snapshot's rows are served.
      await waitFor('row 1 served', async () => (await get(`${base}/features/points/1`)).status === 200);
      expect((await get(`${base}/features/points/1`)).body).toMatchObject({
        status: 'ok',
        values: { x: 0.5, y: 0.25 },
      });

      stream = listen(`${base}/predictions/stream?model=classify`, events, controller.signal);
      await new Promise((r) => setTimeout(r, 300));
      // The snapshot's predictions may still be on their way (a loaded machine): the changes' commits
      // come after this time (their positions can equal the snapshot's, if nothing was written between).
      const before = ((await client.query('SELECT clock_timestamp() AS t')).rows[0].t as Date).getTime();
      await client.query(`INSERT INTO ${table} VALUES (3, 2, -1)`);
      await client.query(`UPDATE ${table} SET x = 1.5 WHERE id = 1`);
      await client.query(`DELETE FROM ${table} WHERE id = 2`);
      const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');

      // Read-after-write: wait until the delete is visible.
      const after = await get(`${base}/features/points/2?minPosition=${rows[0].lsn}&timeoutMs=5000`);
      expect(after.status).toBe(404);
      const three = await get(`${base}/features/points/3?minPosition=${rows[0].lsn}&timeoutMs=5000`);
      expect(three.body).toMatchObject({ status: 'ok', values: { x: 2, y: -1 } });
      expect(parsePosition(three.body.watermark) >= parsePosition(rows[0].lsn)).toBe(true);

      // One prediction per insert and update, in commit order; none for the delete.
      const ofChanges = () => events.filter((e) => Date.parse(e.commitTime) >= before);
      await waitFor('two predictions', () => ofChanges().length >= 2, 30_000);
      await new Promise((r) => setTimeout(r, 300));
      for (const e of events) if (Date.parse(e.commitTime) < before) expect([1, 2]).toContain(e.key[0]);
      events.splice(0, events.length, ...ofChanges());
      expect(events.map((e) => e.key)).toEqual([[3], [1]]);
      for (const [e, [x, y]] of [
        [events[0], [2, -1]],
        [events[1], [1.5, 0.25]],
      ] as const) {
        const expected = predict(layers, x, y);
        expect(e.output.map((v: number) => Math.round(v * 1e5))).toEqual(expected.map((v) => Math.round(v * 1e5)));
        expect(e.label).toBe(['a', 'b', 'c'][expected.indexOf(Math.max(...expected))]);
        expect(e.latency).toMatchObject({
          receivedMs: expect.any(Number),
          featuresMs: expect.any(Number),
          scoredMs: expect.any(Number),
        });
      }
      // POST /predict by key answers from the online store.
      const byKey = await fetch(`${base}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ keys: [[1]] }),
      });
      const predicted = (await byKey.json()) as any;
      expect(byKey.status).toBe(200);
      expect(JSON.stringify(predicted)).toContain('"label"');

      await client.query(`TRUNCATE ${table}`);
      const { rows: t } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
      expect((await get(`${base}/features/points/1?minPosition=${t[0].lsn}&timeoutMs=5000`)).status).toBe(404);
      expect((await get(`${base}/features/points/3`)).status).toBe(404);
    } finally {
      controller.abort();
      await stream;
      await s.stop();
    }
    // Exactly one stored prediction per scored change: the snapshot's two reads, the insert and the update.
    const db = await openDuckDB(store, { readOnly: true });
    try {
      const stored = (
        await db.connection.runAndReadAll('SELECT entity, count(*) FROM _predictions GROUP BY entity ORDER BY entity')
      ).getRows();
      expect(stored.map(([e, n]) => [e, Number(n)])).toEqual([
        ['1', 2],
        ['2', 1],
        ['3', 1],
      ]);
    } finally {
      db.close();
    }
  });

  test('online values equal the offline history at the same position, over a random history', async () => {
    const table = randomName('points');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series(1, 200) g`);
    const { dir } = await model();
    const store = join(mkdtempSync(join(tmpdir(), 'featureflow-serve-')), 'store.duckdb');
    const s = await serve(table, dir, store);
    const base = s.runtime.url;
    try {
      let seed = 7;
      const rand = () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      for (let i = 0; i < 300; i++) {
        const id = 1 + Math.floor(rand() * 260);
        const r = rand();
        if (r < 0.5)
          await client.query(
            `INSERT INTO ${table} VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET x = excluded.x, y = excluded.y`,
            [id, rand(), rand()],
          );
        else if (r < 0.8) await client.query(`UPDATE ${table} SET x = x + 1 WHERE id = $1`, [id]);
        else await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }
      const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
      await waitFor('the online store caught up', async () => {
        const r = await get(`${base}/features/points/1?minPosition=${rows[0].lsn}&timeoutMs=1000`);
        return r.status !== 504;
      });
      // The online path does not wait for DuckDB: the offline history follows in the same order.
      const target = parsePosition(rows[0].lsn);
      const offlineStore = await s.container.getAsync(TOKENS.OfflineStore);
      const offlineWatermark = async () => {
        const w = (await offlineStore.status()).find((v) => v.view === 'points')?.watermark;
        return w ? parsePosition(w) : null;
      };
      await waitFor('the offline history caught up', async () => ((await offlineWatermark()) ?? -1n) >= target);
      // Nothing was written after `target`: the offline history and the online values at their
      // watermarks (both at or after it) are the state at the same position, and hold the same values.
      const offline = await offlineStore.latest('points');
      const ids = Array.from({ length: 260 }, (_, i) => [i + 1]);
      const online = (await (
        await fetch(`${base}/features`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ view: 'points', keys: ids }),
        })
      ).json()) as any;
      expect(parsePosition(online.watermark)).toBeGreaterThanOrEqual(target);
      const offlineRows = new Map(offline.toArray().map((r: any) => [Number(r.id), [r.x, r.y]]));
      const onlineRows = new Map<number, number[]>();
      for (const e of online.results) if (e.status === 'ok') onlineRows.set(Number(e.key[0]), [e.values.x, e.values.y]);
      expect([...onlineRows.entries()].sort((a, b) => a[0] - b[0])).toEqual(
        [...offlineRows.entries()].sort((a, b) => (a[0] as number) - (b[0] as number)),
      );
      // And PostgreSQL agrees on which entities exist.
      const pgIds = (await client.query(`SELECT id FROM ${table} ORDER BY id`)).rows.map((r) => r.id as number);
      expect([...onlineRows.keys()].sort((a, b) => a - b)).toEqual(pgIds);
      expect(formatPosition(parsePosition(online.watermark))).toBe(online.watermark);
    } finally {
      await s.stop();
    }
  });
});
