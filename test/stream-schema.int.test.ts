import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { parseLsn } from '../framework/types';
import { pino } from 'pino';
import { closeContainer, createContainer, TOKENS } from '../index';
import { pgClient, randomName, testConfig, waitFor } from './helpers';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness';

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

    const target = parseLsn((await client.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l);
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
  test('columns added with a default: a warning names them and the fix, the stream goes on', async () => {
    const table = randomName('schema_default');
    await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, a int4)`);
    await client.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 10) g`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    // A constant default (kept as the column's missing value), none, and a volatile one (a rewrite):
    // PostgreSQL writes no change for the rows that were there.
    await client.query(`ALTER TABLE ${table} ADD COLUMN fixed int4 DEFAULT 7, ADD COLUMN plain text, ADD COLUMN drawn float8 DEFAULT random()`);
    await client.query(`UPDATE ${table} SET a = 0 WHERE id = 1`);
    await client.query(`INSERT INTO ${table} (id, a) VALUES (11, 11)`);

    const logged: { level: number; msg: string; table?: string; columns?: string[] }[] = [];
    const container = await createContainer(config);
    try {
      container.rebind(TOKENS.Logger).toConstantValue(pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line)) }));
      const engine = await container.getAsync(TOKENS.IngestEngine);
      await engine.run({ untilCaughtUp: true });
    } finally {
      await closeContainer(container);
    }
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ table: `public.${table}`, columns: ['fixed', 'drawn'] });
    expect(logged[0]!.msg).toMatch(/rows not changed since keep no value .*`featureflow teardown --yes`/);
    // The rows changed after the ALTER reached the log whole, with PostgreSQL's values; the nine
    // others lack the defaults, as the warning says.
    const { changes, diff } = await compareWithPostgres(client, config, table);
    expect([diff.missing.length, diff.extra.length]).toEqual([9, 9]);
    const { rows } = await client.query(`SELECT id, a, fixed, plain, drawn FROM ${table} WHERE id IN (1, 11) ORDER BY id`);
    const streamed = changes.filter((c) => c.op !== 'r').map((c) => c.after);
    expect(streamed).toEqual(rows);
  });

  test('widening the primary key (int4 → int8) keeps each row\'s identity in the log', async () => {
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
    expect(new Set(changes.filter((c) => Number(c.after?.id ?? c.before?.id) === 3).map((c) => c.key))).toEqual(new Set(['{"id":3}']));
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
