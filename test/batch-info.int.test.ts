import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatMicros } from '../framework/features/instant.js';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { closeContainer, createContainer, TOKENS, type BatchInfo } from '../index.js';
import { pgClient, randomName, spawnCli, testConfig, waitFor } from './helpers.js';

// What `onBatch` hears of a durable stream batch, and what `featureflow status` shows: the commit
// time of the newest transaction, as PostgreSQL recorded it (track_commit_timestamp is the oracle).

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster({ settings: { track_commit_timestamp: 'on' } });
});
afterAll(async () => {
  await cluster?.stop();
});

/** A new table holding one row (the snapshot's), and a client of the cluster. */
async function tableOfOneRow(prefix: string): Promise<{ table: string; client: pg.Client }> {
  const table = randomName(prefix);
  const client = await pgClient(cluster.url);
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
  await client.query(`INSERT INTO ${table} VALUES (0, 'before the snapshot')`);
  return { table, client };
}

describe('onBatch', () => {
  test("a durable stream batch carries its newest transaction's commit time; snapshot batches none", async () => {
    const { table, client } = await tableOfOneRow('heard');
    const config = testConfig([table], {}, cluster.url);
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const heard: BatchInfo[] = [];
    const controller = new AbortController();
    const run = engine.run({ signal: controller.signal, onBatch: (b) => void heard.push(b) });
    try {
      await waitFor('the snapshot', () => heard.some((b) => b.snapshot?.done));
      // Three transactions, of one change, of several, of an update and a delete; each one's commit time.
      const commits: bigint[] = [];
      for (const statements of [
        [`INSERT INTO ${table} VALUES (1, 'a')`],
        [`INSERT INTO ${table} SELECT g, 'b' FROM generate_series(2, 50) g`],
        [`UPDATE ${table} SET v = 'c' WHERE id = 1`, `DELETE FROM ${table} WHERE id = 2`],
      ]) {
        commits.push(await committed(client, statements));
      }
      const stream = () => heard.filter((b) => !b.snapshot && b.changes > 0);
      await waitFor('the three transactions to be durable', () =>
        stream().some((b) => b.commitTime === commits.at(-1)),
      );
      expect(heard.filter((b) => b.snapshot).every((b) => b.commitTime === undefined)).toBe(true);
      // Each batch's is the commit time of one of the transactions (the newest it holds), in order.
      const times = stream().map((b) => b.commitTime);
      expect(times.every((t) => t !== undefined && commits.includes(t))).toBe(true);
      expect([...times].sort((a, b) => (a! < b! ? -1 : 1))).toEqual(times);
      expect(times.at(-1)).toBe(commits.at(-1));
    } finally {
      controller.abort();
      await run;
      await closeContainer(container);
      await client.end();
    }
  });
});

/** Runs `statements` in one transaction; its commit time as PostgreSQL recorded it (µs). */
async function committed(client: pg.Client, statements: readonly string[]): Promise<bigint> {
  await client.query('BEGIN');
  for (const sql of statements) await client.query(sql);
  const xid = (await client.query('SELECT txid_current()::text AS xid')).rows[0].xid as string;
  await client.query('COMMIT');
  const { rows } = await client.query(
    'SELECT (extract(epoch FROM pg_xact_commit_timestamp($1::xid)) * 1000000)::bigint::text AS us',
    [xid],
  );
  return BigInt(rows[0].us as string);
}

describe('featureflow status', () => {
  test('shows the newest source commit in the store, while an ingest runs (with its lag) and after it stopped', async () => {
    const { table, client } = await tableOfOneRow('newest');
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-status-'));
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { defineConfig, postgres } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${randomName('slot')}' }),`,
        // No idle heartbeat batch within the test: the last commit must show without a later batch.
        `  ingest: { heartbeatSeconds: 600 } });`,
      ].join('\n'),
    );
    const env = { DATABASE_URL: cluster.url };
    const status = (json = true) =>
      execFileSync(process.execPath, [resolve('bin/featureflow.js'), 'status', ...(json ? ['--json'] : [])], {
        cwd: dir,
        env: { ...process.env, ...env },
        encoding: 'utf8',
      });
    const ingest = spawnCli(dir, ['ingest'], env);
    const times: bigint[] = [];
    try {
      await waitFor('the ingest to publish its progress', () =>
        existsSync(join(dir, '.featureflow', 'ingest-status.json')),
      );
      for (const id of [1, 2]) times.push(await committed(client, [`INSERT INTO ${table} VALUES (${id}, 'x')`]));
      // Read from the running ingest's progress: the last commit shows though the source is quiet after it.
      let report: { changeLog: { state: string; newestCommit: string | null; behindMs: number | null } };
      await waitFor('status to show the last commit', () => {
        report = JSON.parse(status());
        return report.changeLog.newestCommit === formatMicros(times[1]!);
      });
      expect(report!.changeLog.state).toMatch(/in use by a running ingest/);
      expect(report!.changeLog.behindMs).toBeGreaterThanOrEqual(0);
      expect(report!.changeLog.behindMs).toBeLessThan(30_000);
    } finally {
      ingest.child.kill('SIGINT');
    }
    expect((await ingest.exited).code).toBe(0);
    // Read from the store itself once the ingest stopped: the same commit, no lag to report.
    const stopped = JSON.parse(status());
    expect(stopped.changeLog).toMatchObject({ newestCommit: formatMicros(times[1]!), behindMs: null });
    expect(stopped.changeLog.state).toBe('snapshot complete');
    expect(status(false)).toContain(`newest commit                    ${formatMicros(times[1]!)}\n`);
    execFileSync(process.execPath, [resolve('bin/featureflow.js'), 'teardown', '--yes'], {
      cwd: dir,
      env: { ...process.env, ...env },
    });
    await client.end();
  });
});
