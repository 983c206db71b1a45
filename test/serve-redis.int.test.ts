import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { entity, featureService, featureView, float32 } from '../framework/features/index.js';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  postgres,
  redis,
  resolve,
  ServeRuntime,
  saveModel,
  tfjs,
} from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { freePort } from '../testing/pg-cluster.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { pgClient, pgUrl, randomName, waitFor } from './helpers.js';

// `featureflow serve` on a Redis online store that is down when serve starts and killed while rows
// stream in (it comes back empty: it keeps nothing on disk). Meanwhile /health says why it is not
// ready; once Redis is back the online store equals PostgreSQL and every committed insert and update
// has exactly one prediction.

tf.enableProdMode();

let client: pg.Client;
let server: RedisServer;
beforeAll(async () => {
  client = await pgClient();
  server = await startRedis();
});
afterAll(async () => {
  await client?.end();
  await server?.stop();
});

async function health(base: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/health`);
  return { status: res.status, body: await res.json() };
}

describe('featureflow serve on Redis', () => {
  test('Redis down at start-up and killed mid-run: not ready with the reason meanwhile; then nothing lost, nothing twice', async () => {
    const table = randomName('redis_points');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series(1, 30) g`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-serve-redis-'));
    const layers = tf.sequential();
    layers.add(tf.layers.dense({ units: 2, inputShape: [2], activation: 'softmax' }));
    await saveModel(layers, join(dir, 'model'), { version: 'v1' });

    const point = entity({ name: 'point', keys: ['id'] });
    const points = featureView({
      name: 'points',
      version: 1,
      entity: point,
      source: table,
      features: { x: float32, y: float32 },
    });
    const service = featureService({ name: 'classify', features: [points] });
    const port = await freePort();
    const config = resolve(
      defineConfig({
        source: postgres({ connectionString: pgUrl(), tables: [table], slot: randomName('slot') }),
        store: duckdb({ path: join(dir, 'store.duckdb') }),
        online: redis({ url: server.url, prefix: randomName('ff'), maxReconnectDelayMs: 50, connectTimeoutMs: 500 }),
        model: tfjs({ path: join(dir, 'model'), service, name: 'classify' }),
        features: { views: [points], services: [service] },
        ingest: { heartbeatSeconds: 1 },
        serve: { port },
        logLevel: 'silent',
      }),
    );
    const base = `http://127.0.0.1:${port}`;

    // Down at start-up: HTTP answers, not ready, saying why.
    await server.kill();
    const container = await createContainer(config, { serving: true });
    const starting = ServeRuntime.start(container, config);
    await waitFor(
      '/health to answer',
      () =>
        health(base).then(
          (h) => h.status === 503,
          () => false,
        ),
      90_000,
    );
    await waitFor('/health to say Redis is unreachable', async () =>
      /connecting to the online store failed \(FF_ONLINE_UNREACHABLE.*127\.0\.0\.1/.test(
        (await health(base)).body.reason ?? '',
      ),
    );
    expect((await fetch(`${base}/features/points/1`)).status).toBe(503);
    await server.start();
    const runtime = await starting;
    expect((await health(base)).status).toBe(200);

    const controller = new AbortController();
    const ingest = runtime.run({ signal: controller.signal });
    let written = 0;
    try {
      await waitFor('the snapshot served', async () => (await fetch(`${base}/features/points/30`)).status === 200);
      // A writer of single-row inserts, updates and deletes; Redis is killed in the middle and comes back empty.
      let next = 31;
      const write = async (n: number) => {
        for (let i = 0; i < n; i++, written++) {
          if (i % 5 === 4) await client.query(`DELETE FROM ${table} WHERE id = $1`, [next - 3]);
          else if (i % 3 === 2) await client.query(`UPDATE ${table} SET x = x + 1 WHERE id = $1`, [1 + (i % 20)]);
          else await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [next, next, -next++]);
        }
      };
      await write(40);
      await server.kill();
      await write(20);
      await waitFor('/health to say the online store fails', async () => (await health(base)).status === 503, 10_000);
      expect((await health(base)).body.reason).toMatch(/FF_ONLINE_UNREACHABLE|online store/);
      await write(20);
      await server.start();
      await write(20);

      // The oracle: PostgreSQL's rows, each served with its values; the deleted ids are 404.
      const { rows: lsn } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
      await waitFor(
        'the online store to catch up',
        async () => (await fetch(`${base}/features/points/1?minPosition=${lsn[0].lsn}&timeoutMs=1000`)).status === 200,
        60_000,
      );
      const { rows } = await client.query(`SELECT id, x, y FROM ${table} ORDER BY id`);
      const res = await fetch(`${base}/features`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ view: 'points', keys: Array.from({ length: next - 1 }, (_, i) => [i + 1]) }),
      });
      const served = ((await res.json()) as any).results as { key: number[]; status: string; values?: any }[];
      const expected = new Map(rows.map((r) => [r.id as number, r]));
      for (const entry of served) {
        const row = expected.get(entry.key[0]!);
        if (!row) expect([entry.key, entry.status]).toEqual([entry.key, 'missing']);
        else expect([entry.key, entry.status, entry.values]).toEqual([entry.key, 'ok', { x: row.x, y: row.y }]);
      }
      expect(served.filter((e) => e.status === 'ok').length).toBe(rows.length);
    } finally {
      controller.abort();
      await ingest;
      await runtime.idle();
      await runtime.stop();
      await closeContainer(container);
    }

    // Exactly one prediction per snapshot row, insert and update: none lost while Redis was down, none twice.
    const db = await openDuckDB(join(dir, 'store.duckdb'));
    try {
      const count = async (sql: string) => Number((await db.connection.runAndReadAll(sql)).getRows()[0]![0]);
      const twice = await count(
        'SELECT count(*) FROM (SELECT entity, position FROM _predictions GROUP BY ALL HAVING count(*) > 1)',
      );
      const deletes = Math.floor(written / 5);
      expect([twice, await count('SELECT count(*) FROM _predictions')]).toEqual([0, 30 + written - deletes]);
    } finally {
      await db.close();
    }
  });
});
