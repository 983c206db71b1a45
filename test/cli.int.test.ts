import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { pgClient, pgUrl, randomName } from './helpers.js';

const run = promisify(execFile);
const BIN = resolve('bin/featureflow.js');

async function cli(args: string[], cwd: string, env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd,
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A table of ids 1…`rows` and a project directory whose config (`config(table)`, its lines) captures it. */
async function idsProject(prefix: string, rows: number, config: (table: string) => string[]) {
  const table = randomName(prefix);
  const db = await pgClient();
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  await db.query(`INSERT INTO ${table} SELECT generate_series(1, ${rows})`);
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-cli-'));
  writeFileSync(join(dir, 'featureflow.config.ts'), config(table).join('\n'));
  return { table, db, dir };
}

describe('featureflow CLI', () => {
  test('ingest --until-caught-up, status --json, teardown --yes on a config file', async () => {
    const table = randomName('cli');
    const slot = randomName('slot');
    const pub = randomName('pub');
    const db = await pgClient();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await db.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 500) g`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-cli-'));
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, entity, featureView, postgres, text } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `const row = entity({ name: 'row', keys: ['id'] });`,
        // A view that rejects one row: it goes to the dead-letter table, the rest applies.
        `const values = featureView({ name: 'vals', version: 1, entity: row, source: '${table}', features: { v: text },`,
        `  transform: (r) => { if (r.id === 7) throw new Error('seven'); return { v: r.v }; } });`,
        `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}', publication: '${pub}' }),`,
        `  features: { views: [values] }, logLevel: 'warn' });`,
      ].join('\n'),
    );
    const env = { DATABASE_URL: pgUrl() };

    const first = await cli(['ingest', '--until-caught-up'], dir, env);
    // Only the warning about the rejected row, without its values.
    expect(first.stderr).toMatch(/feature views rejected rows; see _feature_dead_letters/);
    expect(first.stderr).not.toMatch(/seven|"level":50/);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/snapshot taken; 500 changes applied/);

    await db.query(`UPDATE ${table} SET v = 'changed' WHERE id <= 10`);
    await db.query(`DELETE FROM ${table} WHERE id > 490`);
    const second = await cli(['ingest', '--until-caught-up'], dir, env);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^20 changes applied/);

    const status = await cli(['status', '--json'], dir, env);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report.source.kind).toBe('postgres');
    expect(report.source.holds[`slot ${slot}`]).toMatch(/^(active|inactive)$/);
    expect(report.changeLog.tables).toEqual([
      { table: `public.${table}`, changes: 520, byOp: { d: 10, r: 500, u: 10 } },
    ]);
    expect(report.source.lag).toBeGreaterThanOrEqual(0);
    expect(report.source.lagUnit).toBe('bytes of WAL');
    // Row 7 is rejected twice: at the snapshot and at its update.
    expect(report.featureViews).toMatchObject([
      { view: 'vals', version: 1, active: true, entities: 489, deadLetters: 2 },
    ]);

    const exported = await cli(['export', 'vals', '--out', join(dir, 'vals.parquet')], dir, env);
    expect(exported.code).toBe(0);

    const refused = await cli(['teardown'], dir, env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--yes/);
    const teardown = await cli(['teardown', '--yes'], dir, env);
    expect(teardown.code).toBe(0);
    expect(teardown.stdout).toBe(`slot ${slot}: dropped\npublication ${pub}: dropped\n`);
    const { rows } = await db.query('SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    expect(rows[0].n).toBe(0);
    await db.end();
  });

  test('a progress file that cannot be written leaves the ingest running to the end', async () => {
    const slot = randomName('slot');
    const { db, dir } = await idsProject('noprogress', 10, (table) => [
      `import { defineConfig, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${slot}' }), logLevel: 'warn' });`,
    ]);
    // The file is written through a temporary one beside it: a folder in its place makes every write fail.
    mkdirSync(join(dir, '.featureflow', 'ingest-status.json.tmp'), { recursive: true });
    const env = { DATABASE_URL: pgUrl() };
    const result = await cli(['ingest', '--until-caught-up'], dir, env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/snapshot taken; 10 changes applied/);
    // Said once, naming the file.
    expect(result.stderr.match(/the progress file cannot be written/g)).toHaveLength(1);
    expect(result.stderr).toContain('ingest-status.json');
    expect((await cli(['teardown', '--yes'], dir, env)).code).toBe(0);
    await db.end();
  });

  test('the bin runs as an executable, as npx runs it (its shebang passes Node a flag and a variable through env -S)', async () => {
    const { stdout } = await run(BIN, ['--help'], { timeout: 60_000 });
    expect(stdout).toMatch(/^Usage: featureflow/);
  });

  test('a missing config says how to make one, with a non-zero exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-cli-'));
    const result = await cli(['ingest'], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/FF_CONFIG_INVALID.*featureflow.config.ts.*--tables/s);
  });
});

describe('featureflow ingest without --until-caught-up', () => {
  test('runs until SIGINT, then stops cleanly after the current batch with exit code 0', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync } = await import('node:fs');
    // A view that rejects row 42: `status` must show the dead letter while the ingest holds the store.
    const { table, db, dir } = await idsProject('sigint', 100, (table) => [
      `import { defineConfig, entity, featureView, int32, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `const row = entity({ name: 'row', keys: ['id'] });`,
      `const ids = featureView({ name: 'ids', version: 1, entity: row, source: '${table}', features: { id2: int32 },`,
      `  transform: (r) => { if (r.id === 42) throw new Error('no'); return { id2: (r.id as number) * 2 }; } });`,
      `export default defineConfig({ source: postgres({ tables: ['${table}'] }), features: { views: [ids] } });`,
    ]);
    const child = spawn(process.execPath, [BIN, 'ingest'], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: pgUrl(), FEATUREFLOW_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const { waitFor } = await import('./helpers.js');
    await waitFor('the ingest to publish progress', () => existsSync(join(dir, '.featureflow', 'ingest-status.json')));
    await db.query(`INSERT INTO ${table} SELECT generate_series(101, 150)`);
    await waitFor('the stream to apply the inserts', async () => {
      const { readFileSync } = await import('node:fs');
      const progress = JSON.parse(readFileSync(join(dir, '.featureflow', 'ingest-status.json'), 'utf8'));
      return progress.tables[0]?.changes === 150;
    });
    const live = await cli(['status', '--json'], dir, { DATABASE_URL: pgUrl() });
    expect(live.code).toBe(0);
    const report = JSON.parse(live.stdout);
    expect(report.changeLog.state).toMatch(/in use by a running ingest/);
    expect(report.featureViews).toMatchObject([{ view: 'ids', version: 1, deadLetters: 1 }]);
    // Per-op counts add up to the totals (the snapshot's reads, then the stream's inserts).
    expect(report.changeLog.tables).toEqual([{ table: `public.${table}`, changes: 150, byOp: { r: 100, c: 50 } }]);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/snapshot taken; 150 changes applied/);
    const { rows } = await db.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name = 'featureflow'");
    expect(rows.length).toBe(1);
    await db.query("SELECT pg_drop_replication_slot('featureflow')");
    await db.query('DROP PUBLICATION featureflow');
    await db.end();
  });
});
