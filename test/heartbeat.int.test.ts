import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { parsePosition } from '../framework/types.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, readChangeLog, testConfig, waitFor } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// The slot holds back WAL up to its confirmed_flush_lsn. When the captured tables are idle but the
// server writes WAL elsewhere, heartbeats must still move that position, or WAL piles up.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

async function confirmedFlush(slot: string): Promise<bigint | null> {
  const { rows } = await client.query(
    'SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return rows[0]?.l ? parsePosition(rows[0].l) : null;
}

async function walPosition(): Promise<bigint> {
  return parsePosition((await client.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l);
}

describe('heartbeats', () => {
  test('captured tables idle, WAL written to another table: confirmed_flush_lsn advances', async () => {
    const captured = randomName('hb_idle');
    const busy = randomName('hb_busy');
    await client.query(`CREATE TABLE ${captured} (id int PRIMARY KEY, v text)`);
    await client.query(`CREATE TABLE ${busy} (id serial PRIMARY KEY, payload text)`);
    await client.query(`INSERT INTO ${captured} VALUES (1, 'only row')`);

    const config = testConfig([captured], { ingest: { heartbeatSeconds: 1 } });
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const controller = new AbortController();
    let snapshotDone = false;
    let written = 0n;
    const run = engine.run({
      signal: controller.signal,
      onBatch: (b) => void (b.snapshot?.done && (snapshotDone = true)),
    });
    const failed = run.then(() => Promise.reject(new Error('ingest stopped early')));
    try {
      await Promise.race([waitFor('the snapshot', () => snapshotDone), failed]);
      const start = await confirmedFlush(config.source.config.slot);
      expect(start).not.toBeNull();

      // Several MB of WAL in many transactions on the uncaptured table.
      for (let i = 0; i < 20; i++) {
        await client.query(
          `INSERT INTO ${busy} (payload) SELECT md5(g::text) || repeat('x', 200) FROM generate_series(1, 1000) g`,
        );
      }
      written = await walPosition();
      expect(written - start!).toBeGreaterThan(4_000_000n);

      // The slot catches up with the WAL written without a single captured change.
      await Promise.race([
        waitFor(
          'confirmed_flush_lsn to pass the busy writes',
          async () => (await confirmedFlush(config.source.config.slot))! >= written,
          20_000,
        ),
        failed,
      ]);
      const { rows } = await client.query(
        'SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 AS lag FROM pg_replication_slots WHERE slot_name = $1',
        [config.source.config.slot],
      );
      // Other test files write to the same cluster meanwhile; the lag is what they wrote since, not our 4 MB.
      expect(Number(rows[0].lag)).toBeLessThan(64 * 1024 * 1024);
    } finally {
      controller.abort();
      await run.catch(() => undefined);
      await closeContainer(container);
    }
    const { changes } = await readChangeLog(config.store.config.path);
    expect(changes.map((c) => c.op)).toEqual(['r']);
    // The change log's checkpoint moved too: it is what a restart resumes from.
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    const checkpoint = (await db.connection.runAndReadAll('SELECT lsn FROM _checkpoint')).getRows()[0]![0] as bigint;
    db.close();
    expect(BigInt(checkpoint)).toBeGreaterThanOrEqual(written);
  });
  test('a captured transaction open while heartbeats pass its start is still applied after a restart', async () => {
    const captured = randomName('hb_open');
    const busy = randomName('hb_busy2');
    await client.query(`CREATE TABLE ${captured} (id int PRIMARY KEY, v text)`);
    await client.query(`CREATE TABLE ${busy} (id serial PRIMARY KEY, payload text)`);
    const config = testConfig([captured], { ingest: { heartbeatSeconds: 1 } });
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const controller = new AbortController();
    let snapshotDone = false;
    const run = engine.run({
      signal: controller.signal,
      onBatch: (b) => void (b.snapshot?.done && (snapshotDone = true)),
    });
    const failed = run.then(() => Promise.reject(new Error('ingest stopped early')));
    const open = await pgClient();
    try {
      await Promise.race([waitFor('the snapshot', () => snapshotDone), failed]);
      // A transaction on the captured table starts, and stays open while WAL moves on elsewhere.
      await open.query('BEGIN');
      await open.query(`INSERT INTO ${captured} SELECT g, 'open' FROM generate_series(1, 100) g`);
      for (let i = 0; i < 5; i++)
        await client.query(`INSERT INTO ${busy} (payload) SELECT repeat('x', 500) FROM generate_series(1, 1000)`);
      const written = await walPosition();
      await Promise.race([
        waitFor(
          'confirmed_flush_lsn to pass the open transaction',
          async () => (await confirmedFlush(config.source.config.slot))! >= written,
          20_000,
        ),
        failed,
      ]);
    } finally {
      controller.abort();
      await run.catch(() => undefined);
      await closeContainer(container);
    }
    // Committed after the slot (and the log) moved past its first change: it must still arrive.
    await open.query('COMMIT');
    await open.end();
    await ingestUntilCaughtUp(config);
    const { diff, state } = await compareWithPostgres(client, config, captured);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(100);
  });
});
