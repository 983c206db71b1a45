import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { saveModel } from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { pgClient, randomName, spawnCli, waitFor } from './helpers.js';

// One `featureflow ingest` publishing on a Kafka bus, two `featureflow serve` processes consuming it
// in one consumer group (shared Redis online store, shared PostgreSQL predictions table), a writer
// inserting and updating rows; one serve process killed (SIGKILL) mid-stream. The group gives its
// partitions to the other, which applies what the dead one had not committed: in the end every
// committed insert and update has exactly one stored prediction, and the survivor's GET /features
// equals PostgreSQL.

tf.enableProdMode();

let client: pg.Client;
let redis: RedisServer;
beforeAll(async () => {
  client = await pgClient();
  redis = await startRedis();
});
afterAll(async () => {
  await client?.end();
  await redis?.stop();
});

describe('featureflow serve on a Kafka bus', () => {
  test('two serve processes in one group, one killed mid-stream: the other takes over; one prediction per committed change, features equal PostgreSQL', async () => {
    const table = randomName('kserve');
    const predictions = randomName('kserve_predictions');
    const slot = randomName('slot');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series(1, 30) g`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-serve-'));
    const layers = tf.sequential();
    layers.add(tf.layers.dense({ units: 2, inputShape: [2], activation: 'softmax' }));
    await saveModel(layers, join(dir, 'model'), { version: 'v1' });
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, entity, featureService, featureView, float32, kafkaBus, postgres, postgresPredictions, redis, tfjs } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `const point = entity({ name: 'point', keys: ['id'] });`,
        `const points = featureView({ name: 'points', version: 1, entity: point, source: '${table}', features: { x: float32, y: float32 } });`,
        `const service = featureService({ name: 'classify', features: [points] });`,
        `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }), store: duckdb({ path: 'store.duckdb' }),`,
        `  online: redis({ url: '${redis.url}', prefix: '${randomName('ff')}' }), model: tfjs({ path: 'model', service, name: 'classify' }),`,
        `  predictions: [postgresPredictions({ table: '${predictions}', keyColumns: { id: 'integer' }, keep: 'every' })],`,
        `  bus: kafkaBus({ topicPrefix: '${randomName('ff')}', group: '${randomName('group')}', partitions: 4, sessionTimeoutMs: 6000 }),`,
        `  features: { views: [points], services: [service] }, serve: { port: 0 }, ingest: { heartbeatSeconds: 1 } });`,
      ].join('\n'),
    );
    const env = { KAFKA_BROKERS: inject('kafkaBrokers').join(',') };

    const ingest = spawnCli(dir, ['ingest'], env);
    const first = spawnCli(dir, ['serve'], env);
    const second = spawnCli(dir, ['serve'], env);
    try {
      // What each process says it does comes on lines of their own, maybe in later chunks.
      await waitFor('the first serve process to start', () => /consuming feature rows.*\n/.test(first.out()), 120_000);
      await waitFor(
        'the second serve process to start',
        () => /consuming feature rows.*\n/.test(second.out()),
        120_000,
      );
      await waitFor('the ingest to start', () => /publishing committed feature rows.*\n/.test(ingest.out()), 120_000);
      expect(first.out()).toContain('consuming feature rows from the kafka bus');
      expect(ingest.out()).toContain('publishing committed feature rows on the kafka bus');
      const survivor = /serving on (\S+)/.exec(second.out())![1]!;
      const count = async () =>
        Number(
          (await client.query(`SELECT count(*) AS n FROM ${predictions}`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]
            .n,
        );

      let next = 31;
      const write = async (n: number) => {
        for (let i = 0; i < n; i++) {
          if (i % 3 === 2) await client.query(`UPDATE ${table} SET x = x + 1 WHERE id = $1`, [1 + (i % 40)]);
          else await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [next, next, -next++]);
        }
      };
      await write(90);
      // Mid-stream: both processes own partitions and predict (each its share), changes still arriving.
      const predicted = async (base: string) =>
        Number(
          /^featureflow_predictions_total\{[^}]*\} (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1] ??
            0,
        );
      const killed = /serving on (\S+)/.exec(first.out())![1]!;
      await waitFor(
        'both processes to predict',
        async () => (await predicted(killed)) > 0 && (await predicted(survivor)) > 0 && (await count()) > 40,
        120_000,
      );
      first.child.kill('SIGKILL');
      expect((await first.exited).signal).toBe('SIGKILL');
      // Then the predictions table refuses writes for a while (an error that will not pass by
      // itself): the survivor does not commit those records' offsets, consumes them again after a
      // pause, and once the table takes writes again none is lost, none stored twice.
      const refuse = randomName('refuse');
      await client.query(
        `CREATE FUNCTION ${refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
      );
      await client.query(
        `CREATE TRIGGER ${refuse} BEFORE INSERT OR UPDATE ON ${predictions} FOR EACH ROW EXECUTE FUNCTION ${refuse}()`,
      );
      await write(30);
      await waitFor(
        'the survivor to consume refused records again',
        () => /records on the bus were not served; consuming them again/.test(second.err()),
        120_000,
      );
      await client.query(`DROP TRIGGER ${refuse} ON ${predictions}`);
      await write(60);
      await client.query(`DELETE FROM ${table} WHERE id IN (31, 32)`);

      // The ingest takes in every change (the slot confirmed past the last commit), then stops; the
      // change log is the oracle of what was committed.
      const { rows: end } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      await waitFor(
        'the ingest to take in every change',
        async () =>
          (
            await client.query<{ done: boolean }>(
              'SELECT confirmed_flush_lsn >= $2::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = $1',
              [slot, end[0]!.lsn],
            )
          ).rows[0]?.done === true,
        120_000,
      );
      ingest.child.kill('SIGTERM');
      expect((await ingest.exited).code, ingest.err()).toBe(0);
      const db = await openDuckDB(join(dir, 'store.duckdb'), { readOnly: true });
      let scored: string[];
      let lastCommit: bigint;
      try {
        lastCommit = BigInt(
          (
            await db.connection.runAndReadAll(
              `SELECT max(commit_lsn) FROM change_log WHERE table_name = 'public.${table}'`,
            )
          ).getRows()[0]![0] as bigint,
        );
        scored = (
          await db.connection.runAndReadAll(
            `SELECT json_extract_string(key, '$.id') AS id, lsn FROM change_log WHERE table_name = 'public.${table}' AND op IN ('r', 'c', 'u')`,
          )
        )
          .getRows()
          .map(([id, lsn]) => `${String(id)}@${BigInt(lsn as bigint)}`)
          .sort();
      } finally {
        db.close();
      }
      // The snapshot's 30 reads, 120 inserts, 60 updates.
      expect(scored).toHaveLength(210);
      const stored = async () =>
        (
          await client.query<{ id: number; position: string }>(
            `SELECT id, (position - '0/0')::text AS position FROM ${predictions}`,
          )
        ).rows
          .map((r) => `${r.id}@${r.position}`)
          .sort();
      await waitFor(
        'the survivor to predict what the killed process left',
        async () => (await stored()).length >= 210,
        180_000,
      );
      // None lost, none twice (the table keeps every prediction, keyed by entity, position and commit time).
      expect(await stored()).toEqual(scored);

      // GET /features on the survivor: PostgreSQL's rows, the deleted ones gone (the deletes make no
      // prediction, so they may still be on their way).
      const { rows } = await client.query<{ id: number; x: number; y: number }>(
        `SELECT id, x, y FROM ${table} ORDER BY id`,
      );
      const served = async () => {
        const out: Record<number, unknown> = {};
        for (const id of [...rows.map((r) => r.id), 31, 32]) {
          const res = await fetch(`${survivor}/features/points/${id}`);
          out[id] = res.status === 200 ? ((await res.json()) as { values: unknown }).values : res.status;
        }
        return out;
      };
      const oracle: Record<number, unknown> = { 31: 404, 32: 404 };
      for (const r of rows) oracle[r.id] = { x: Math.fround(r.x), y: Math.fround(r.y) };
      await waitFor(
        'the survivor to serve PostgreSQL',
        async () => JSON.stringify(await served()) === JSON.stringify(oracle),
        60_000,
      );
      expect(await served()).toEqual(oracle);
      // Read-after-write on the survivor, which owns every partition now: its watermark (the lowest
      // marker of its partitions) reaches the last commit.
      const position = `${(lastCommit >> 32n).toString(16).toUpperCase()}/${(lastCommit & 0xffffffffn).toString(16).toUpperCase()}`;
      const visible = async () =>
        (await fetch(`${survivor}/features/points/1?minPosition=${position}&timeoutMs=1000`)).status;
      await waitFor('the survivor to reach the last commit', async () => (await visible()) === 200, 60_000);
      expect(await visible()).toBe(200);
      expect(((await (await fetch(`${survivor}/health`)).json()) as { status: string }).status).toBe('ready');
    } finally {
      for (const p of [ingest, first, second]) p.child.kill('SIGKILL');
      await Promise.all([ingest.exited, first.exited, second.exited]);
    }
  });
});
