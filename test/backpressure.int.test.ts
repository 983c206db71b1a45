import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, testConfig, waitFor } from './helpers.js';

// While the sink is slow (here: a batch handler that takes longer than wal_sender_timeout) and
// the socket is paused, standby status replies must keep going, or the walsender ends the stream.

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster({ settings: { wal_sender_timeout: '2s' } });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('back-pressure', () => {
  test('a sink slower than wal_sender_timeout: the walsender keeps the same connection, nothing is lost', async () => {
    const table = randomName('slow');
    const client: pg.Client = await pgClient(cluster.url);
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 5, batchSize: 2000 } }, cluster.url);
    const container = await createContainer(config);
    let slowBatches = 0;
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const controller = new AbortController();
    let applied = 0;
    const run = engine.run({
      signal: controller.signal,
      // The engine takes no next batch until this resolves.
      onBatch: async (b) => {
        // Hold up the first two stream batches for longer than wal_sender_timeout.
        if (!b.snapshot && b.changes > 0 && slowBatches < 2) {
          slowBatches += 1;
          await new Promise((r) => setTimeout(r, 3500));
        }
        applied += b.snapshot ? 0 : b.changes;
      },
    });
    const walsender = async () =>
      (
        await client.query(`SELECT pid FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [
          'featureflow',
        ])
      ).rows.map((r) => r.pid as number);
    await waitFor('the stream to start', async () => (await walsender()).length === 1);
    const [pid] = await walsender();
    // Enough changes to fill the queue past its high-water mark while the sink stalls.
    for (let i = 0; i < 10; i++)
      await client.query(
        `INSERT INTO ${table} SELECT g, repeat('x', 100) FROM generate_series(${i * 5000 + 1}, ${(i + 1) * 5000}) g`,
      );
    await waitFor('every change to be applied', () => applied === 50_000, 60_000);
    expect(slowBatches).toBe(2);
    const after = await walsender();
    if (after[0] !== pid) {
      const { readFileSync } = await import('node:fs');
      const { dirname, join } = await import('node:path');
      console.error(
        readFileSync(join(dirname(cluster.dataDir), 'server.log'), 'utf8')
          .split('\n')
          .slice(-30)
          .join('\n'),
      );
    }
    expect(after).toEqual([pid]);
    controller.abort();
    await run;
    await closeContainer(container);
    await client.end();
  });
});
