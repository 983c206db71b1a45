import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, readChangeLog, testConfig, waitFor } from './helpers.js';
import { compareWithPostgres, inTransaction, startIngest } from './ingest-harness.js';

// PostgreSQL restarts under a running ingest (its own cluster: the shared one must stay up for the
// other test files). The engine reconnects with backoff, resumes from its checkpoint, and applies
// every transaction exactly once.

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

describe('PostgreSQL restarts mid-stream', () => {
  test('writes before, during and after a restart: state equals PostgreSQL, each transaction once', async () => {
    const setup = await pgClient(cluster.url);
    const table = randomName('restart');
    await setup.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, phase text NOT NULL)`);
    await setup.query(`INSERT INTO ${table} SELECT g, 0, 'initial' FROM generate_series(1, 100) g`);
    await setup.end();

    const config = testConfig([table], { ingest: { heartbeatSeconds: 1, maxBackoffSeconds: 1 } }, cluster.url);
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const ingest = startIngest(engine);

    // One writer of single-change transactions that reconnects when the server goes away. A
    // transaction whose COMMIT was cut off may or may not have committed: its xid is not recorded.
    const committed: number[] = [];
    let phase = 'before';
    let writing = true;
    await ingest.until('the snapshot', ingest.snapshotDone);
    const writes = (async () => {
      let writer: pg.Client | undefined;
      for (let i = 0; writing; i++) {
        try {
          writer ??= await pgClient(cluster.url);
          const w = writer;
          committed.push(
            await inTransaction(w, () =>
              i % 2 === 0
                ? w.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [1000 + i, i, phase])
                : w.query(`UPDATE ${table} SET n = n + 1, phase = $2 WHERE id = $1`, [1 + (i % 100), phase]),
            ),
          );
        } catch {
          await writer?.end().catch(() => undefined);
          writer = undefined;
          // The server is restarting: wait until it accepts connections again.
          await waitFor('the server to accept connections', async () => {
            try {
              writer = await pgClient(cluster.url);
              return true;
            } catch {
              return false;
            }
          });
        }
      }
      await writer?.end();
    })();
    const count = async (n: number) => {
      const target = committed.length + n;
      await ingest.until(`${n} more commits`, () => committed.length >= target);
    };

    await count(50);
    phase = 'during';
    await cluster.restart();
    phase = 'after';
    await count(50);
    writing = false;
    await writes;

    const check = await pgClient(cluster.url);
    await ingest.caughtUp(check);
    await ingest.stop();
    await closeContainer(container);

    const { diff, changes } = await compareWithPostgres(check, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    await check.end();

    const perXid = new Map<number, number>();
    for (const c of changes) if (c.op !== 'r') perXid.set(c.xid, (perXid.get(c.xid) ?? 0) + 1);
    for (const [xid, n] of perXid) expect(n, `changes of xid ${xid}`).toBe(1);
    for (const xid of committed) expect(perXid.has(xid), `xid ${xid} in the log`).toBe(true);
    // Writes really happened on both sides of the restart.
    const phases = new Set(changes.filter((c) => c.op !== 'r').map((c) => c.after!.phase));
    expect(phases).toContain('before');
    expect(phases).toContain('after');
    expect((await readChangeLog(config.store.config.path)).changes.filter((c) => c.op === 'r')).toHaveLength(100);
  });
  test('every featureflow connection terminated mid-stream (pg_terminate_backend): the engine reconnects', async () => {
    const client = await pgClient(cluster.url);
    const table = randomName('terminate');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL)`);
    await client.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 50) g`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1, maxBackoffSeconds: 1 } }, cluster.url);
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const ingest = startIngest(engine);
    await ingest.until('the snapshot', ingest.snapshotDone);
    const committed: number[] = [];
    // The engine streams again once a walsender other than the terminated ones holds the slot.
    const terminated = new Set<number>();
    const streaming = async () => {
      const { rows } = await client.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [
        config.source.config.slot,
      ]);
      return rows[0]?.active_pid != null && !terminated.has(rows[0].active_pid);
    };
    for (let round = 0; round < 3; round++) {
      await ingest.until('the engine to stream again', streaming);
      for (let i = 0; i < 20; i++) {
        committed.push(
          await inTransaction(client, () =>
            client.query(`UPDATE ${table} SET n = n + 1 WHERE id = $1`, [1 + ((round * 20 + i) % 50)]),
          ),
        );
      }
      const { rows } = await client.query(
        "SELECT pid, pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = 'featureflow'",
      );
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) terminated.add(r.pid);
    }
    await ingest.caughtUp(client);
    await ingest.stop();
    await closeContainer(container);
    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const perXid = new Map<number, number>();
    for (const c of changes) if (c.op !== 'r') perXid.set(c.xid, (perXid.get(c.xid) ?? 0) + 1);
    expect([...perXid.keys()].sort()).toEqual([...committed].sort());
    expect([...perXid.values()].every((n) => n === 1)).toBe(true);
    await client.end();
  });
});
