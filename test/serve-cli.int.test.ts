import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { saveModel } from '../index.js';
import { pgClient, randomName, spawnCli, waitFor } from './helpers.js';

// `featureflow serve` as a user runs it: a model that does not fit its feature service stops it at
// start-up, before it touches the source; SIGTERM drains and exits 0.

tf.enableProdMode();

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** A project directory with a table of points (id, x, y), a model of `inputs` inputs and a config serving it. */
async function project(inputs: number): Promise<{ dir: string; table: string; slot: string }> {
  const table = randomName('served');
  const slot = randomName('slot');
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, y float8)`);
  await client.query(`INSERT INTO ${table} SELECT g, g, -g FROM generate_series(1, 20) g`);
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-serve-cli-'));
  const layers = tf.sequential();
  layers.add(tf.layers.dense({ units: 2, inputShape: [inputs], activation: 'softmax' }));
  await saveModel(layers, join(dir, 'model'), { version: 'v1' });
  writeFileSync(
    join(dir, 'featureflow.config.ts'),
    [
      `import { defineConfig, entity, featureService, featureView, float32, memory, postgres, tfjs } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `const point = entity({ name: 'point', keys: ['id'] });`,
      `const points = featureView({ name: 'points', version: 1, entity: point, source: '${table}', features: { x: float32, y: float32 } });`,
      `const service = featureService({ name: 'classify', features: [points] });`,
      `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }),`,
      `  online: memory(), model: tfjs({ path: 'model', service, name: 'classify' }), features: { views: [points], services: [service] },`,
      `  serve: { port: 0 }, ingest: { heartbeatSeconds: 1 } });`,
    ].join('\n'),
  );
  return { dir, table, slot };
}

async function slotExists(slot: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return rows.length === 1;
}

describe('featureflow serve at start-up and shut-down', () => {
  test('a model whose input does not fit the service stops serve with an error naming the features and both shapes; no slot is made', async () => {
    const { dir, slot } = await project(3);
    const run = spawnCli(dir, ['serve']);
    const { code } = await run.exited;
    expect(code).toBe(1);
    expect(run.err()).toMatch(/FF_MODEL_INPUT/);
    expect(run.err()).toMatch(/model classify does not fit feature service classify/);
    expect(run.err()).toMatch(
      /its input \w+ takes \[3\] \(3 values\) per example and the features points.x float32 \(1 value\) \+ points.y float32 \(1 value\) = 2 values/,
    );
    expect(run.out()).not.toMatch(/serving on/);
    expect(await slotExists(slot)).toBe(false);
  });

  test('SIGTERM: serve stops after the current batch, drains and exits 0; a restart resumes from its checkpoint', async () => {
    const { dir, table, slot } = await project(2);
    const first = spawnCli(dir, ['serve']);
    await waitFor('serve to start', () => first.out().includes('serving on'), 60_000);
    const url = /serving on (\S+)/.exec(first.out())![1]!;
    await waitFor('the snapshot to be served', async () => (await fetch(`${url}/features/points/20`)).status === 200);
    // `status` beside the running serve, which holds the store: the figures it publishes.
    let report: any;
    await waitFor('status to show the snapshot', async () => {
      const status = spawnCli(dir, ['status', '--json']);
      if ((await status.exited).code !== 0) throw new Error(`status failed: ${status.err()}`);
      report = JSON.parse(status.out());
      return report.changeLog.tables.length > 0;
    });
    expect(report.changeLog.state).toMatch(new RegExp(`^in use by a running serve \\(pid ${first.child.pid}\\)`));
    expect(report.changeLog.tables).toEqual([{ table: `public.${table}`, changes: 20, byOp: { r: 20 } }]);
    expect(report.changeLog.checkpoint).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(report.featureViews).toMatchObject([{ view: 'points', version: 1, entities: 20, rows: 20 }]);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(first.out()).toMatch(/20 changes applied; checkpoint [0-9A-F]+\/[0-9A-F]+/);

    await client.query(`UPDATE ${table} SET x = 100 WHERE id = 1`);
    const second = spawnCli(dir, ['serve', '--until-caught-up']);
    const { code } = await second.exited;
    expect([code, second.err()]).toEqual([0, '']);
    // Only the update is new: the snapshot is not taken again.
    expect(second.out()).toMatch(/^serving on \S+\n1 changes applied/);
    const teardown = spawnCli(dir, ['teardown', '--yes']);
    const { code: teardownCode } = await teardown.exited;
    expect([teardownCode, teardown.err()]).toEqual([0, '']);
    expect(await slotExists(slot)).toBe(false);
  });
});
