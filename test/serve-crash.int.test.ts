import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { saveModel } from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, spawnCli, waitFor } from './helpers.js';

// `featureflow serve` killed with SIGKILL while changes stream in, then started again: every
// committed insert and update of the scored table has exactly one stored prediction — none lost,
// none twice.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

function start(dir: string, args: string[] = []) {
  return spawnCli(dir, ['serve', ...args]);
}

describe('featureflow serve under SIGKILL', () => {
  test('after a kill mid-stream and a restart, exactly one stored prediction per committed insert and update', async () => {
    const table = randomName('killed');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series(1, 50) g`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-serve-kill-'));
    const layers = tf.sequential();
    layers.add(tf.layers.dense({ units: 2, inputShape: [2], activation: 'softmax' }));
    await saveModel(layers, join(dir, 'model'), { version: 'v1' });
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, duckdb, entity, featureService, featureView, float32, memory, postgres, tfjs } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `const point = entity({ name: 'point', keys: ['id'] });`,
        `const points = featureView({ name: 'points', version: 1, entity: point, source: '${table}', features: { x: float32, y: float32 } });`,
        `const service = featureService({ name: 'classify', features: [points] });`,
        `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${randomName('slot')}' }), store: duckdb({ path: 'store.duckdb' }),`,
        `  online: memory(), model: tfjs({ path: 'model', service, name: 'classify' }), features: { views: [points], services: [service] },`,
        `  serve: { port: 0 }, ingest: { heartbeatSeconds: 1 } });`,
      ].join('\n'),
    );

    const first = start(dir);
    await waitFor('serve to start', () => first.out().includes('serving on'), 60_000);
    const url = /serving on (\S+)/.exec(first.out())![1]!;
    // A writer: single-row transactions of inserts and updates, while serve runs; killed in the middle.
    let next = 51;
    const write = async (n: number) => {
      for (let i = 0; i < n; i++) {
        if (i % 3 === 2) await client.query(`UPDATE ${table} SET x = x + 1 WHERE id = $1`, [1 + (i % 40)]);
        else await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [next, next, -next++]);
      }
    };
    // The first insert served means the snapshot is committed and the stream follows.
    await write(1);
    await waitFor(
      'the stream to follow',
      async () => (await fetch(`${url}/features/points/51`)).status === 200,
      60_000,
    );
    await write(149);
    // A burst of larger transactions: the change log takes them in faster than the model and the
    // predictions table, so the kill finds changes logged but not yet predicted.
    for (let t = 0; t < 20; t++) {
      await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series($1::int, $1::int + 99) g`, [next]);
      next += 100;
    }
    await new Promise((r) => setTimeout(r, 300));
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    // Where the kill lands when the model lags: after the change log committed changes whose
    // predictions were not written yet. Made sure of by hand, as a kill would leave it: the
    // predictions of the last logged transactions removed, the watermark not after them.
    const db0 = await openDuckDB(join(dir, 'store.duckdb'));
    try {
      // The 13th newest logged transaction of the stream (or, when fewer were logged, the start of it).
      const [[back]] = (
        await db0.connection.runAndReadAll(
          `SELECT coalesce((SELECT commit_lsn FROM (SELECT DISTINCT commit_lsn FROM change_log WHERE op IN ('c', 'u')) ORDER BY commit_lsn DESC LIMIT 1 OFFSET 12), (SELECT min(commit_lsn) - 1 FROM change_log WHERE op IN ('c', 'u')))`,
        )
      ).getRows() as [[bigint]];
      // By entity and position: a snapshot's reads share their position with the first change after it
      // (a transaction can start at the snapshot's very position), and they were predicted before the kill.
      await db0.connection.run(
        `DELETE FROM _predictions p USING change_log c WHERE p.position = c.lsn AND p.entity = json_extract_string(c.key, '$.id') AND c.commit_lsn > ${back}`,
      );
      // Never forward: when the model lagged behind the log at the kill, the watermark is already earlier.
      await db0.connection.run(`UPDATE _prediction_watermarks SET position = least(position, ${back})`);
    } finally {
      db0.close();
    }
    await write(60);

    const second = start(dir, ['--until-caught-up']);
    const done = await second.exited;
    expect(second.err()).not.toMatch(/error/i);
    expect(done.code).toBe(0);

    const db = await openDuckDB(join(dir, 'store.duckdb'), { readOnly: true });
    try {
      const logged = (
        await db.connection.runAndReadAll(
          `SELECT json_extract_string(key, '$.id') AS id, lsn FROM change_log WHERE table_name = 'public.${table}' AND op IN ('r', 'c', 'u') ORDER BY seq`,
        )
      ).getRows();
      const stored = (
        await db.connection.runAndReadAll('SELECT entity, position FROM _predictions ORDER BY position, entity')
      ).getRows();
      // Every scored change: the snapshot's reads, then 2141 inserts and 69 updates (one of the first
      // inserts may land in the snapshot as a read).
      expect(logged).toHaveLength(2260);
      const key = (id: unknown, position: unknown) => `${String(id)}@${BigInt(position as bigint)}`;
      const storedKeys = stored.map(([e, p]) => key(e, p));
      expect(new Set(storedKeys).size).toBe(storedKeys.length);
      expect(storedKeys.sort()).toEqual(logged.map(([id, p]) => key(id, p)).sort());
    } finally {
      db.close();
    }
  });
});
