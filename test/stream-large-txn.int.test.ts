import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import type { BatchInfo } from '../framework/ingest/ingest-engine.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, readChangeLog, testConfig } from './helpers.js';
import { ingestUntilCaughtUp } from './ingest-harness.js';

// A transaction larger than the batch size is cut into batches (complete: false until its commit),
// applied in one DuckDB transaction: all of it or nothing, with memory bounded by the batch size.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

const ROWS = 200_000;
const BATCH = 10_000;

describe('one large transaction', () => {
  test('200k rows in one transaction: bounded batches, atomic apply, exactly 200k changes', async () => {
    const table = randomName('large');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int8 NOT NULL, label text NOT NULL)`);
    const config = testConfig([table], { ingest: { batchSize: BATCH, heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    const { rows } = await client.query(
      `WITH t AS (INSERT INTO ${table} SELECT g, g * 3, 'label ' || g FROM generate_series(1, ${ROWS}) g RETURNING 1)
       SELECT count(*)::int AS n, txid_current()::text AS xid FROM t`,
    );
    expect(rows[0].n).toBe(ROWS);
    const xid = Number(BigInt(rows[0].xid) & 0xffffffffn);

    // First run: stop in the middle of the transaction. Nothing of it may stay in the log.
    {
      const container = await createContainer(config);
      const engine = await container.getAsync(TOKENS.IngestEngine);
      const controller = new AbortController();
      let incomplete = 0;
      await engine.run({
        signal: controller.signal,
        onBatch: (b) => {
          if (!b.complete && ++incomplete === 3) controller.abort();
        },
      });
      await closeContainer(container);
      expect(incomplete).toBeGreaterThanOrEqual(3);
      const { changes } = await readChangeLog(config.store.config.path);
      expect(changes.filter((c) => c.op !== 'r')).toHaveLength(0);
    }

    // Second run: the whole transaction, in batches of at most BATCH changes.
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const batches: BatchInfo[] = [];
    await ingestUntilCaughtUp(config, {
      onBatch: (b) => {
        if (b.changes > 0) batches.push(b);
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      },
    });
    expect(batches.length).toBe(ROWS / BATCH);
    for (const b of batches) expect(b.changes).toBeLessThanOrEqual(BATCH);
    expect(batches.reduce((n, b) => n + b.changes, 0)).toBe(ROWS);
    // Only the last batch completes the transaction (and carries its commit as the checkpoint).
    expect(batches.map((b) => b.complete)).toEqual(batches.map((_, i) => i === batches.length - 1));
    // Only it is durable when heard: it alone carries the commit time.
    expect(batches.map((b) => b.commitTime !== undefined)).toEqual(batches.map((_, i) => i === batches.length - 1));
    // Loose: the process does not hold the transaction in memory (200k rows decoded would be far more).
    expect(rssPeak - rssBefore).toBeLessThan(300 * 1024 * 1024);

    const { changes } = await readChangeLog(config.store.config.path);
    const streamed = changes.filter((c) => c.op !== 'r');
    expect(streamed).toHaveLength(ROWS);
    expect(new Set(streamed.map((c) => c.key)).size).toBe(ROWS);
    expect(streamed.every((c) => c.op === 'c' && c.xid === xid)).toBe(true);
  });
  test('snapshot batches never exceed ingest.snapshotBatchSize, however many rows one COPY chunk holds', async () => {
    // Regression: the batch was cut once per COPY chunk, so small rows made batches of thousands.
    const table = randomName('snapbatch');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    await client.query(`INSERT INTO ${table} SELECT generate_series(1, 10000)`);
    const config = testConfig([table], { ingest: { snapshotBatchSize: 300, heartbeatSeconds: 1 } });
    const sizes: number[] = [];
    await ingestUntilCaughtUp(config, { onBatch: (b) => void (b.snapshot && sizes.push(b.changes)) });
    expect(Math.max(...sizes)).toBeLessThanOrEqual(300);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(10000);
    expect(sizes.length).toBe(Math.ceil(10000 / 300));
  });
});
