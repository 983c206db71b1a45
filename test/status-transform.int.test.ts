import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { pgClient, pgUrl, randomName, spawnCli } from './helpers.js';

async function cli(dir: string, args: string[]) {
  const run = spawnCli(dir, args, { DATABASE_URL: pgUrl() });
  const { code } = await run.exited;
  return { code, stdout: run.out(), stderr: run.err() };
}

describe('featureflow status shows the time each view takes per row', () => {
  test('a slow transform is seen as slow, per view, in status and status --json', { timeout: 300_000 }, async () => {
    const table = randomName('slow');
    const db = await pgClient();
    try {
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int)`);
      await db.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 300) g`);
      const dir = mkdtempSync(join(tmpdir(), 'featureflow-status-'));
      writeFileSync(
        join(dir, 'featureflow.config.ts'),
        [
          `import { defineConfig, entity, featureView, int32, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
          `const row = entity({ name: 'row', keys: ['id'] });`,
          // Spins at least 300 µs per row: the figure status shows cannot be below that.
          `const spin = (v: number) => { const until = performance.now() + 0.3; while (performance.now() < until); return v; };`,
          `const slow = featureView({ name: 'slow', version: 1, entity: row, source: '${table}', features: { v: int32 },`,
          `  transform: (r) => ({ v: spin(r.v as number) }) });`,
          `const plain = featureView({ name: 'plain', version: 1, entity: row, source: '${table}', features: { v: int32 } });`,
          `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${table}', publication: '${table}' }),`,
          `  features: { views: [slow, plain] } });`,
        ].join('\n'),
      );

      // Before any ingest the views have no figure.
      const first = await cli(dir, ['ingest', '--until-caught-up']);
      expect(first.code).toBe(0);
      const json = await cli(dir, ['status', '--json']);
      expect(json.code).toBe(0);
      const views = JSON.parse(json.stdout).featureViews as {
        view: string;
        transformedRows: number;
        transformMicrosPerRow: number | null;
      }[];
      const byName = new Map(views.map((v) => [v.view, v]));
      // Every snapshot row went through both views' transforms in the first batch.
      expect(byName.get('slow')).toMatchObject({ transformedRows: 300 });
      expect(byName.get('plain')).toMatchObject({ transformedRows: 300 });
      expect(byName.get('slow')!.transformMicrosPerRow).toBeGreaterThanOrEqual(300);
      expect(byName.get('plain')!.transformMicrosPerRow).toBeGreaterThan(0);

      const text = await cli(dir, ['status']);
      expect(text.code).toBe(0);
      const slowLine = text.stdout.split('\n').find((l) => l.trim().startsWith('slow v1'));
      expect(slowLine).toMatch(/transform \d+(\.\d+)? µs\/row/);
      expect(Number(/transform (\d+(?:\.\d+)?) µs\/row/.exec(slowLine!)![1])).toBeGreaterThanOrEqual(300);

      // Streamed changes are measured too (a new process: its own figures replace the earlier ones).
      await db.query(`UPDATE ${table} SET v = v + 1 WHERE id <= 50`);
      expect((await cli(dir, ['ingest', '--until-caught-up'])).code).toBe(0);
      const after = JSON.parse((await cli(dir, ['status', '--json'])).stdout).featureViews as typeof views;
      expect(after.find((v) => v.view === 'slow')).toMatchObject({ transformedRows: 50 });
      expect(after.find((v) => v.view === 'slow')!.transformMicrosPerRow).toBeGreaterThanOrEqual(300);
      await cli(dir, ['teardown', '--yes']);
    } finally {
      await db.end();
    }
  });
});
