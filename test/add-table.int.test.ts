import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { FeatureflowError } from '../framework/errors.js';
import { parsePosition } from '../framework/types.js';
import { createPartitionedTable, pgClient, randomName, readChangeLog, testConfig, withTables } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// A table added to `source.tables` of a log that already follows its slot is read in a snapshot of
// its own (a temporary slot's), while the log's slot keeps its place; the stream then skips that
// table's changes committed before its snapshot, and applies the rest.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

describe('a table added to source.tables later', () => {
  test('is snapshotted on its own while writers change both tables, then streamed: both equal PostgreSQL, nothing logged twice', async () => {
    const first = randomName('added_first');
    const second = randomName('added_second');
    for (const t of [first, second]) {
      await client.query(`CREATE TABLE ${t} (id int PRIMARY KEY, n int NOT NULL, label text)`);
      await client.query(`INSERT INTO ${t} SELECT g, g, 'row ' || g FROM generate_series(1, 20000) g`);
    }
    const config = testConfig([first], { ingest: { snapshotBatchSize: 500 } });
    await ingestUntilCaughtUp(config);

    // Transactions touching both tables, from before the second table is added until after its snapshot.
    const writer = await pgClient();
    const ops: { xid: number; lsnBefore: bigint; lsnAfter: bigint }[] = [];
    let writing = true;
    let nextId = 20001;
    const writes = (async () => {
      for (let i = 1; writing; i++) {
        await writer.query('BEGIN');
        const before = (await writer.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l;
        await writer.query(`UPDATE ${first} SET n = n + 1 WHERE id = $1`, [1 + ((i * 7919) % 20000)]);
        if (i % 3 === 0) await writer.query(`INSERT INTO ${second} VALUES ($1, $2, 'new')`, [nextId++, i]);
        else if (i % 3 === 1)
          await writer.query(`UPDATE ${second} SET n = n + 1, label = 'upd' WHERE id = $1`, [
            1 + ((i * 104729) % 20000),
          ]);
        else await writer.query(`DELETE FROM ${second} WHERE id = $1`, [1 + ((i * 15485863) % 20000)]);
        const xid = Number(BigInt((await writer.query('SELECT txid_current()::text AS x')).rows[0].x) & 0xffffffffn);
        await writer.query('COMMIT');
        const after = (await writer.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l;
        ops.push({ xid, lsnBefore: parsePosition(before), lsnAfter: parsePosition(after) });
      }
    })();
    while (ops.length < 30) await new Promise((r) => setTimeout(r, 10));

    const both = withTables(config, [`public.${first}`, `public.${second}`]);
    const result = await ingestUntilCaughtUp(both);
    expect(result.snapshotted).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    writing = false;
    await writes;
    await writer.end();
    await ingestUntilCaughtUp(both);

    for (const t of [first, second]) {
      const { diff } = await compareWithPostgres(client, both, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
    }
    const { changes } = await readChangeLog(both.store.config.path);
    const of = (t: string) => changes.filter((c) => c.table === `public.${t}`);
    // The first table: each writer transaction once, whether before or after the second's snapshot.
    const firstXids = of(first)
      .filter((c) => c.op !== 'r')
      .map((c) => c.xid);
    expect(firstXids.sort()).toEqual(ops.map((o) => o.xid).sort());
    // The second: its snapshot at its own point, with writers on both sides of it; streamed changes
    // only from transactions committed after it, each once.
    const secondSnapshot = of(second).filter((c) => c.op === 'r');
    const start = secondSnapshot[0]!.lsn;
    expect(ops.some((o) => o.lsnAfter < start)).toBe(true);
    expect(ops.some((o) => o.lsnBefore > start)).toBe(true);
    const secondStreamed = of(second).filter((c) => c.op !== 'r');
    expect(secondStreamed.length).toBeGreaterThan(0);
    for (const c of secondStreamed) expect(c.commitLsn >= start).toBe(true);
    const after = new Set(ops.filter((o) => o.lsnBefore > start).map((o) => o.xid));
    for (const xid of after) expect(secondStreamed.filter((c) => c.xid === xid).length).toBeLessThanOrEqual(1);
    expect(new Set(secondStreamed.map((c) => c.xid)).size).toBe(secondStreamed.length);
    // The second table's snapshot came after the first's, in the same log.
    expect(
      secondSnapshot[0]!.seq >
        of(first)
          .filter((c) => c.op === 'r')
          .at(-1)!.seq,
    ).toBe(true);
  });

  test("a partitioned table added later: its partitions' rows under it, a row moving across partitions after", async () => {
    const first = randomName('added_plain');
    const parted = randomName('added_parted');
    await client.query(`CREATE TABLE ${first} (id int PRIMARY KEY, v int)`);
    await client.query(`INSERT INTO ${first} SELECT g, g FROM generate_series(1, 10) g`);
    await createPartitionedTable(client, parted, 10);
    const config = testConfig([first]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${parted} SET v = 0 WHERE id = 1`);
    const both = withTables(config, [`public.${first}`, `public.${parted}`]);
    await ingestUntilCaughtUp(both);
    await client.query(`UPDATE ${parted} SET region = 'eu' WHERE id = 3`);
    await client.query(`UPDATE ${first} SET v = 9 WHERE id = 4`);
    await ingestUntilCaughtUp(both);
    for (const t of [first, parted]) {
      const { diff } = await compareWithPostgres(client, both, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
    }
  });

  test('a table no longer configured is refused with FF_TABLES_CHANGED naming it, nothing written', async () => {
    const kept = randomName('kept');
    const dropped = randomName('dropped');
    for (const t of [kept, dropped]) {
      await client.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await client.query(`INSERT INTO ${t} SELECT generate_series(1, 10)`);
    }
    const config = testConfig([kept, dropped]);
    await ingestUntilCaughtUp(config);
    const before = (await readChangeLog(config.store.config.path)).changes.length;
    const error = await ingestUntilCaughtUp(withTables(config, [`public.${kept}`])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FeatureflowError);
    expect((error as FeatureflowError).code).toBe('FF_TABLES_CHANGED');
    expect((error as Error).message).toContain(`public.${dropped}`);
    expect((error as Error).message).toMatch(/tables can be added, not removed/);
    expect((await readChangeLog(config.store.config.path)).changes.length).toBe(before);
  });
});
