import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { closeContainer, createContainer, TOKENS, type BatchInfo } from '../index.js';
import { pgClient, randomName, testConfig, waitFor } from './helpers.js';

// What `onBatch` hears of a durable stream batch: the commit time of its newest transaction, as
// PostgreSQL recorded it (track_commit_timestamp is the oracle).

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster({ settings: { track_commit_timestamp: 'on' } });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('onBatch', () => {
  test("a durable stream batch carries its newest transaction's commit time; snapshot batches none", async () => {
    const table = randomName('heard');
    const client = await pgClient(cluster.url);
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${table} VALUES (0, 'before the snapshot')`);
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
        await client.query('BEGIN');
        for (const sql of statements) await client.query(sql);
        const xid = (await client.query('SELECT txid_current()::text AS xid')).rows[0].xid as string;
        await client.query('COMMIT');
        const row = (
          await client.query(
            'SELECT (extract(epoch FROM pg_xact_commit_timestamp($1::xid)) * 1000000)::bigint::text AS us',
            [xid],
          )
        ).rows[0];
        commits.push(BigInt(row.us as string));
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
