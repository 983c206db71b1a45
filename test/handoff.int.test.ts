import { afterEach, describe, expect, test } from 'vitest';
import type { Container } from 'inversify';
import { createContainer, closeContainer, TOKENS } from '../index.js';
import { parsePosition } from '../framework/types.js';
import { diffAgainstPostgres, pgClient, randomName, readChangeLog, replay, testConfig } from './helpers.js';
import { startIngest } from './ingest-harness.js';

const containers: Container[] = [];
afterEach(async () => {
  for (const c of containers.splice(0)) await closeContainer(c);
});

interface WriterOp {
  xid: number;
  lsnBefore: bigint;
  lsnAfter: bigint;
}

describe('snapshot and stream meet exactly', () => {
  test('writers running during the snapshot: state equals PostgreSQL, every later operation logged once', async () => {
    const table = randomName('handoff');
    const setup = await pgClient();
    await setup.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, n bigint NOT NULL, label text, amount numeric(12,3), seen timestamptz)`,
    );
    await setup.query(
      `INSERT INTO ${table} SELECT g, g::bigint * 1000000000, 'row ' || g, g / 7.0, now() - g * interval '1 second' FROM generate_series(1, 30000) g`,
    );

    const config = testConfig([table], { ingest: { snapshotBatchSize: 500, heartbeatSeconds: 1 } });
    const container = await createContainer(config);
    containers.push(container);
    const engine = await container.getAsync(TOKENS.IngestEngine);

    // A writer of single-row transactions, each recording where it lies in the WAL.
    const writer = await pgClient();
    const ops: WriterOp[] = [];
    let writing = true;
    let nextId = 30001;
    const writes = (async () => {
      let i = 0;
      while (writing) {
        i++;
        await writer.query('BEGIN');
        const before = (await writer.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l;
        const kind = i % 3;
        if (kind === 0) await writer.query(`INSERT INTO ${table} VALUES ($1, $2, 'new', 1.5, now())`, [nextId++, i]);
        else if (kind === 1)
          await writer.query(`UPDATE ${table} SET n = n + 1, label = 'upd ' || $2::text WHERE id = $1`, [
            1 + ((i * 7919) % 30000),
            i,
          ]);
        else await writer.query(`DELETE FROM ${table} WHERE id = $1`, [1 + ((i * 104729) % 30000)]);
        const xid = Number(BigInt((await writer.query('SELECT txid_current()::text AS x')).rows[0].x) & 0xffffffffn);
        await writer.query('COMMIT');
        const after = (await writer.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l;
        ops.push({ xid, lsnBefore: parsePosition(before), lsnAfter: parsePosition(after) });
      }
    })();

    const ingest = startIngest(engine);
    await ingest.until('the snapshot to finish', ingest.snapshotDone);
    // Keep writing a little past the snapshot, then stop and wait for the stream to catch up.
    await new Promise((r) => setTimeout(r, 300));
    writing = false;
    await writes;
    await ingest.caughtUp(setup);
    await ingest.stop();
    await closeContainer(container);
    containers.length = 0;

    const { changes, schemas } = await readChangeLog(config.store.config.path);
    const qualified = `public.${table}`;
    const snapshotLsn = changes.find((c) => c.op === 'r')!.lsn;
    const streamed = changes.filter((c) => c.op !== 'r');
    const perXid = new Map<number, number>();
    for (const c of streamed) perXid.set(c.xid, (perXid.get(c.xid) ?? 0) + 1);
    // Writers ran during the snapshot: some operations fell before the consistent point, some after.
    expect(ops.some((o) => o.lsnAfter < snapshotLsn)).toBe(true);
    expect(ops.some((o) => o.lsnBefore > snapshotLsn)).toBe(true);
    const writerXids = new Set(ops.map((o) => o.xid));
    // Every streamed change comes from one writer transaction, and each transaction is logged at most once
    // (deletes of already-deleted ids change nothing and log nothing).
    for (const [xid, n] of perXid) {
      expect(writerXids.has(xid)).toBe(true);
      expect(n).toBe(1);
    }
    // Operations wholly before the consistent point are in the snapshot, not the stream.
    for (const o of ops.filter((o) => o.lsnAfter < snapshotLsn)) expect(perXid.has(o.xid)).toBe(false);

    const state = replay(changes, qualified);
    const schema = schemas.get(`${qualified}#1`)!;
    const diff = await diffAgainstPostgres(setup, qualified, state.values(), schema.columns);
    expect(diff).toEqual({ missing: [], extra: [] });
    await writer.end();
    await setup.end();
  });
});
