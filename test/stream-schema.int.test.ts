import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { parsePosition } from '../framework/types.js';
import { pino } from 'pino';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, testConfig, waitFor } from './helpers.js';
import { compareWithPostgres, inTransaction, ingestUntilCaughtUp } from './ingest-harness.js';

// Schema changes arrive in the stream as new Relation messages. Each one becomes a new schema
// version in `_schemas`; changes before and after it are decoded with the schema they were written in.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

describe('schema changes mid-stream', () => {
  test('ADD COLUMN, DROP COLUMN and type changes while rows keep changing: nothing lost, versions recorded', async () => {
    const table = randomName('schema');
    const qualified = `public.${table}`;
    await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, a int4 NOT NULL, b text, c text)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, 'b' || g, 'c' || g FROM generate_series(1, 200) g`);

    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const controller = new AbortController();
    let checkpoint = 0n;
    let snapshotDone = false;
    const run = engine.run({
      signal: controller.signal,
      onBatch: (b) => {
        if (b.snapshot?.done) snapshotDone = true;
        if (!b.snapshot) checkpoint = b.checkpoint;
      },
    });
    const failed = run.then(() => Promise.reject(new Error('ingest stopped early')));
    await Promise.race([waitFor('the snapshot', () => snapshotDone), failed]);

    // A writer that keeps changing rows with statements valid in every phase, plus phase-specific ones.
    const writer = await pgClient();
    let phase = 0;
    let writing = true;
    let nextId = 1000;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        const id = 1 + (i % 200);
        await writer.query(`UPDATE ${table} SET a = a + 1, b = b || '.' WHERE id = $1`, [id]);
        await writer.query(`INSERT INTO ${table} (id, a, b) VALUES ($1, $2, 'new')`, [nextId++, i]);
        if (i % 5 === 0) await writer.query(`DELETE FROM ${table} WHERE id = $1`, [nextId - 3]);
        if (phase >= 1) await writer.query(`UPDATE ${table} SET d = $2 WHERE id = $1`, [id, i]);
        if (phase >= 3) await writer.query(`UPDATE ${table} SET a = a + 3000000000 WHERE id = $1`, [id + 1]);
      }
    })();
    const writerFailed = writes.then(() => new Promise<never>(() => undefined));
    const progressed = async (n: number) => {
      const start = nextId;
      await Promise.race([waitFor(`${n} more writes`, () => nextId >= start + n), failed, writerFailed]);
    };

    await progressed(20);
    await client.query(`ALTER TABLE ${table} ADD COLUMN d int4`);
    phase = 1;
    await progressed(20);
    await client.query(`ALTER TABLE ${table} DROP COLUMN c`);
    phase = 2;
    await progressed(20);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN a TYPE int8`);
    phase = 3;
    await progressed(20);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN b TYPE varchar(4000)`);
    await progressed(20);
    // The key's type widens: the same rows must keep their identity in the log.
    await client.query(`ALTER TABLE ${table} ALTER COLUMN id TYPE int8`);
    await progressed(20);
    // DDL and changes in one transaction: the Relation message arrives mid-transaction.
    await client.query('BEGIN');
    // The lock first: taken by ALTER after the UPDATE's row locks, it could deadlock with the writer.
    await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    await client.query(`UPDATE ${table} SET b = 'before e' WHERE id <= 10`);
    await client.query(`ALTER TABLE ${table} ADD COLUMN e jsonb`);
    await client.query(`UPDATE ${table} SET e = jsonb_build_object('id', id) WHERE id <= 20`);
    await client.query('COMMIT');
    await progressed(20);
    writing = false;
    await writes;
    await writer.end();

    const target = parsePosition((await client.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l);
    await Promise.race([waitFor('the stream to catch up', () => checkpoint >= target, 60_000), failed]);
    controller.abort();
    await run;
    await closeContainer(container);

    const { diff, schemas, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const versions = [...schemas.entries()]
      .filter(([id]) => id.startsWith(`${qualified}#`))
      .sort(([a], [b]) => Number(a.split('#')[1]) - Number(b.split('#')[1]))
      .map(([, s]) => s.columns.map((c) => `${c.name}:${c.type}/${c.typeOid}`).join(','));
    expect(versions).toEqual([
      'id:int4/23,a:int4/23,b:text/25,c:text/25',
      'id:int4/23,a:int4/23,b:text/25,c:text/25,d:int4/23',
      'id:int4/23,a:int4/23,b:text/25,d:int4/23',
      'id:int4/23,a:int8/20,b:text/25,d:int4/23',
      'id:int4/23,a:int8/20,b:text/1043,d:int4/23',
      'id:int8/20,a:int8/20,b:text/1043,d:int4/23',
      'id:int8/20,a:int8/20,b:text/1043,d:int4/23,e:jsonb/3802',
    ]);
    // Each row has one identity across the key's type change.
    const keys = new Set(changes.filter((c) => c.after?.id === 5 || c.after?.id === 5n).map((c) => c.key));
    expect(keys.size).toBe(1);
  });
  test("columns added with a default: the table is read again, the log equals PostgreSQL, the other table's changes kept once", async () => {
    const table = randomName('schema_default');
    const other = randomName('schema_other');
    await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, a int4)`);
    await client.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 10) g`);
    await client.query(`CREATE TABLE ${other} (id int4 PRIMARY KEY, n int4)`);
    await client.query(`INSERT INTO ${other} SELECT g, 0 FROM generate_series(1, 5) g`);
    const config = testConfig([table, other]);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET a = 100 WHERE id = 10`);
    // In one transaction: a change of the other table, then a constant default (kept as the column's
    // missing value), none, and a volatile one (a rewrite): PostgreSQL writes no change for the rows
    // that were there. Then changes under the new shape, before and after the table is read again.
    const xid = await inTransaction(client, async () => {
      await client.query(`UPDATE ${other} SET n = 1 WHERE id = 1`);
      await client.query(
        `ALTER TABLE ${table} ADD COLUMN fixed int4 DEFAULT 7, ADD COLUMN plain text, ADD COLUMN drawn float8 DEFAULT random()`,
      );
      await client.query(`UPDATE ${table} SET a = 0 WHERE id = 1`);
      await client.query(`INSERT INTO ${table} (id, a) VALUES (11, 11)`);
      await client.query(`UPDATE ${other} SET n = 2 WHERE id = 2`);
    });
    await client.query(`UPDATE ${table} SET fixed = 8 WHERE id = 2`);

    const logged: { level: number; msg: string; table?: string; columns?: string[] }[] = [];
    const reported: { table: string; done: boolean }[] = [];
    const container = await createContainer(config);
    try {
      container
        .rebind(TOKENS.Logger)
        .toConstantValue(pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line)) }));
      const engine = await container.getAsync(TOKENS.IngestEngine);
      await engine.run({ untilCaughtUp: true, onBatch: (b) => void (b.snapshot && reported.push(b.snapshot)) });
    } finally {
      await closeContainer(container);
    }
    // Progress hears the re-read as a snapshot of the table.
    expect(reported.at(-1)).toEqual({ table: `public.${table}`, done: true });
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ table: `public.${table}`, columns: ['fixed', 'drawn'] });
    expect(logged[0]!.msg).toMatch(/reading the table again/);

    for (const t of [table, other]) {
      const { diff } = await compareWithPostgres(client, config, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
    }
    const { changes } = await compareWithPostgres(client, config, table);
    const own = changes.filter((c) => c.table === `public.${table}`);
    // The first snapshot, the update before the ALTER, the transaction with the ALTER, then the table
    // read again after a truncate: the rows as PostgreSQL has them, defaults included (and the update
    // made after that transaction).
    expect(own.map((c) => c.op).join('')).toBe(`${'r'.repeat(10)}uuct${'r'.repeat(11)}`);
    const reread = own.slice(own.findIndex((c) => c.op === 't') + 1);
    expect(
      reread.every((c) => c.after!.fixed === (c.after!.id === 2 ? 8 : 7) && typeof c.after!.drawn === 'number'),
    ).toBe(true);
    expect(reread.find((c) => c.after!.id === 1)!.after!.a).toBe(0);
    // The other table's changes in the transaction that carried the ALTER: each once.
    const otherStreamed = changes.filter((c) => c.table === `public.${other}` && c.op !== 'r');
    expect(otherStreamed.map((c) => [c.xid, c.after!.id])).toEqual([
      [xid, 1],
      [xid, 2],
    ]);
    // The next run streams on, reading nothing again.
    await client.query(`UPDATE ${table} SET fixed = 9 WHERE id = 3`);
    const again = await ingestUntilCaughtUp(config);
    expect(again.snapshotted).toBe(false);
    const after = await compareWithPostgres(client, config, table);
    expect(after.diff).toEqual({ missing: [], extra: [] });
    expect(
      after.changes
        .filter((c) => c.table === `public.${table}`)
        .map((c) => c.op)
        .join(''),
    ).toBe(`${'r'.repeat(10)}uuct${'r'.repeat(11)}u`);
  });

  test('defaults added to two tables in one transaction (one under REPLICA IDENTITY FULL), a truncate after: both read again, equal PostgreSQL', async () => {
    const a = randomName('schema_two_a');
    const b = randomName('schema_two_b');
    await client.query(`CREATE TABLE ${a} (id int PRIMARY KEY, v int)`);
    await client.query(`CREATE TABLE ${b} (n int, t text)`);
    await client.query(`ALTER TABLE ${b} REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${a} SELECT g, g FROM generate_series(1, 30) g`);
    await client.query(`INSERT INTO ${b} SELECT g, 't' || g FROM generate_series(1, 30) g`);
    const config = testConfig([a, b]);
    await ingestUntilCaughtUp(config);
    await inTransaction(client, async () => {
      await client.query(`ALTER TABLE ${a} ADD COLUMN x int DEFAULT 1`);
      await client.query(`ALTER TABLE ${b} ADD COLUMN y text DEFAULT 'yy'`);
      await client.query(`UPDATE ${a} SET v = 0 WHERE id = 1`);
      await client.query(`DELETE FROM ${b} WHERE n = 2`);
    });
    await client.query(`TRUNCATE ${a}`);
    await client.query(`INSERT INTO ${a} VALUES (100, 1, 5)`);
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${b} SET t = 'z' WHERE n = 3`);
    await ingestUntilCaughtUp(config);
    for (const t of [a, b]) {
      const { diff, changes } = await compareWithPostgres(client, config, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
      expect(changes.filter((c) => c.table === `public.${t}` && c.op === 't').length, t).toBeGreaterThanOrEqual(1);
    }
  });

  test("widening the primary key (int4 → int8) keeps each row's identity in the log", async () => {
    // Regression: int4 keys were logged as {"id":5} and int8 keys as {"id":"5"}, so after the ALTER
    // every updated row appeared twice in the rebuilt state.
    const table = randomName('widen');
    await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, n int NOT NULL)`);
    await client.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 20) g`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET n = 1 WHERE id <= 5`);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN id TYPE int8`);
    await client.query(`UPDATE ${table} SET n = 2 WHERE id <= 10`);
    await client.query(`DELETE FROM ${table} WHERE id = 20`);
    await ingestUntilCaughtUp(config);
    const { diff, state, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(19);
    expect(new Set(changes.filter((c) => Number(c.after?.id ?? c.before?.id) === 3).map((c) => c.key))).toEqual(
      new Set(['{"id":3}']),
    );
  });

  test('a type change that decodes alike (text → varchar) is still a new schema version', async () => {
    const table = randomName('retype');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, t text)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 'a')`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN t TYPE varchar(10)`);
    await client.query(`UPDATE ${table} SET t = 'b'`);
    await ingestUntilCaughtUp(config);
    const { diff, schemas, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect([...schemas.values()].map((s) => s.columns[1]!.typeOid)).toEqual([25, 1043]);
    expect(changes.at(-1)!.op).toBe('u');
  });
});
