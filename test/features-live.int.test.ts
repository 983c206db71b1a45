import { describe, expect, test } from 'vitest';
import type pg from 'pg';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { entity, featureView, float64 } from '../framework/features/index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { startIngest } from './ingest-harness.js';

// Regression: PostgreSQL takes a commit's timestamp before the commit record's place in the WAL is
// fixed, so concurrent commits (and commits racing the slot's creation, against the snapshot's time)
// can carry timestamps out of commit order. Ordered by time, the feature history then showed a stale
// version as the latest one (a deleted row came back).

/** Inserts, updates and deletes on random ids until `stop()`. */
function writer(client: pg.Client, table: string, seed: number) {
  let running = true;
  let i = seed;
  const done = (async () => {
    while (running) {
      i += 7;
      const id = 1 + ((i * 7919) % 3000);
      const r = i % 3;
      if (r === 0)
        await client.query(`INSERT INTO ${table} VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = excluded.n`, [
          id,
          i,
        ]);
      else if (r === 1) await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = $1`, [id]);
      else await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
    },
  };
}

/** A table of 3000 numbered rows and a view of its numbers. */
async function numbersTable(prefix: string, viewName: string) {
  const table = randomName(prefix);
  const setup = await pgClient();
  await setup.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n bigint NOT NULL)`);
  await setup.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 3000) g`);
  const view = featureView({
    name: viewName,
    version: 1,
    entity: entity({ name: 'item', keys: ['id'] }),
    source: table,
    features: { n: float64 },
    transform: (row) => ({ n: Number(row.n) }),
  });
  return { table, setup, view };
}

describe('feature history under concurrent writers', () => {
  test('latest features equal PostgreSQL after writers raced the snapshot and each other; commit times never go backwards', async () => {
    const { table, setup, view } = await numbersTable('live', 'live_n');
    const config = testConfig([table], {
      features: { views: [view] },
      ingest: { heartbeatSeconds: 1, snapshotBatchSize: 500 },
    });

    const clients = [await pgClient(), await pgClient(), await pgClient()];
    const writers = clients.map((c, k) => writer(c, table, k * 1000));
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const ingest = startIngest(engine);
    await new Promise((r) => setTimeout(r, 1500));
    for (const w of writers) await w.stop();
    await ingest.caughtUp(setup);
    await ingest.stop();

    const store = await container.getAsync(TOKENS.OfflineStore);
    const latest = await store.latest('live_n');
    const ours = new Map<number, number>();
    const ids = latest.getChild('id')!.toArray();
    const ns = latest.getChild('n')!.toArray();
    for (let i = 0; i < latest.numRows; i++) ours.set(Number(ids[i]), Number(ns[i]));
    const { rows } = await setup.query(`SELECT id, n::float8 AS n FROM ${table} ORDER BY id`);
    const theirs = new Map(rows.map((r) => [r.id as number, r.n as number]));
    expect(ours.size).toBe(theirs.size);
    expect([...ours.entries()].filter(([id, n]) => theirs.get(id) !== n)).toEqual([]);
    await closeContainer(container);

    // The file the ingest left, read-only.
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    const count = async (sql: string) => Number((await db.connection.runAndReadAll(sql)).getRows()[0]![0]);
    let current: number;
    let backwards: number;
    try {
      current = await count('SELECT count(*) FROM fv_live_n_v1 WHERE valid_to IS NULL AND NOT deleted');
      backwards = await count(
        'SELECT count(*) FROM (SELECT commit_time < lag(commit_time) OVER (ORDER BY seq) AS back FROM change_log) WHERE back',
      );
    } finally {
      db.close();
    }
    // The view's current rows (valid_to null) are the same entities.
    expect(current).toBe(theirs.size);
    expect(backwards).toBe(0);
    for (const c of [...clients, setup]) await c.end();
  });

  test("the ingesting process's offline store reads while the ingest commits, without failing either", async () => {
    const { table, setup, view } = await numbersTable('reads', 'read_n');
    const config = testConfig([table], { features: { views: [view] }, ingest: { heartbeatSeconds: 1 } });
    const clients = [await pgClient(), await pgClient()];
    const container = await createContainer(config);
    try {
      const engine = await container.getAsync(TOKENS.IngestEngine);
      const ingest = startIngest(engine);
      await ingest.caughtUp(setup);
      const writers = clients.map((c, k) => writer(c, table, k * 1000));
      // Regression: these reads ran on the change log's own connection, inside its open commit, and
      // DuckDB failed the commit's appender ("closed pending query result"), stopping the ingest.
      const store = await container.getAsync(TOKENS.OfflineStore);
      for (let read = 0; read < 10; read++) {
        const [status] = await store.status();
        expect(status?.view).toBe('read_n');
        expect((await store.latest('read_n')).numRows).toBeGreaterThan(0);
      }
      for (const w of writers) await w.stop();
      await ingest.caughtUp(setup);
      await ingest.stop();
      const latest = await store.latest('read_n');
      const { rows } = await setup.query(`SELECT count(*)::int AS n FROM ${table}`);
      expect(latest.numRows).toBe(rows[0].n);
    } finally {
      await closeContainer(container);
      for (const c of [...clients, setup]) await c.end();
    }
  });
});
