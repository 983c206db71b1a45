import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { ingestUntilCaughtUp } from './ingest-harness.js';

// A transaction that began (and changed a row) earlier but committed later than another comes after
// it in commit order, whatever its change positions say. Reading "what committed after position P"
// by change position would skip it: what a stop left unscored must be read by commit position.

let client: pg.Client;
let other: pg.Client;
beforeAll(async () => {
  client = await pgClient();
  other = await pgClient();
});
afterAll(async () => {
  await client?.end();
  await other?.end();
});

describe('commit order, not change order', () => {
  test('changesAfter(P) holds a change made before P by a transaction committed after P', async () => {
    const table = randomName('order');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);

    // T1 changes row 1 first, T2 changes row 2 and commits, then T1 commits.
    await client.query('BEGIN');
    await client.query(`UPDATE ${table} SET v = 1 WHERE id = 1`);
    await other.query(`UPDATE ${table} SET v = 2 WHERE id = 2`);
    await client.query('COMMIT');
    await ingestUntilCaughtUp(config);

    const container = await createContainer(config);
    try {
      const log = await container.getAsync(TOKENS.ChangeLog);
      await log.open();
      const all: { id: unknown; position: bigint; commit: bigint }[] = [];
      for await (const page of log.changesAfter(0n, [`public.${table}`])) {
        for (const c of page)
          if (c.op === 'u') all.push({ id: c.after!.id, position: c.position, commit: c.commitPosition });
      }
      // In commit order: T2's change first, then T1's, although T1's change position is lower.
      expect(all.map((c) => c.id)).toEqual([2, 1]);
      const [t2, t1] = all as [(typeof all)[0], (typeof all)[0]];
      expect(t1.position < t2.commit).toBe(true);
      expect(t1.commit > t2.commit).toBe(true);
      // After T2's commit: T1's change, which a reader going by change positions would skip.
      const after: unknown[] = [];
      for await (const page of log.changesAfter(t2.commit, [`public.${table}`]))
        for (const c of page) after.push(c.after?.id);
      expect(after).toEqual([1]);
    } finally {
      await closeContainer(container);
    }
  });
});
