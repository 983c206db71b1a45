import { afterAll, beforeAll, expect, test } from 'vitest';
import type pg from 'pg';
import { pgClient, randomName, testConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// A snapshot batch ends at `snapshotBatchSize` rows or at about 1 MB of row data, whichever comes
// first: a table of wide rows (images, documents) is read in smaller batches, so that a snapshot does
// not hold 8192 wide rows at once in each of its stages.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

test('a table of wide rows is snapshotted in batches of about 1 MB, a table of narrow rows in full-size batches; both equal PostgreSQL', async () => {
  const wide = randomName('wide_rows');
  const narrow = randomName('narrow_rows');
  await client.query(`CREATE TABLE ${wide} (id int PRIMARY KEY, body bytea NOT NULL)`);
  await client.query(`CREATE TABLE ${narrow} (id int PRIMARY KEY, n int NOT NULL)`);
  // 3000 rows of 2000 bytes (each different): ~6 MB. 10 000 rows of two integers: ~200 kB.
  await client.query(
    `INSERT INTO ${wide} SELECT g, decode(repeat(lpad(to_hex(g), 8, '0'), 500), 'hex') FROM generate_series(1, 3000) g`,
  );
  await client.query(`INSERT INTO ${narrow} SELECT g, g * 7 FROM generate_series(1, 10000) g`);
  const config = testConfig([wide, narrow]);
  const batches: Record<string, number[]> = { [`public.${wide}`]: [], [`public.${narrow}`]: [] };
  await ingestUntilCaughtUp(config, {
    onBatch: (b) => {
      if (b.snapshot && b.changes > 0) batches[b.snapshot.table]!.push(b.changes);
    },
  });
  const wideBatches = batches[`public.${wide}`]!;
  expect(wideBatches.reduce((a, b) => a + b, 0)).toBe(3000);
  // About 1 MB each: ~520 rows of ~2 kB on the wire, the last one shorter.
  expect(wideBatches.length).toBeGreaterThanOrEqual(5);
  expect(Math.max(...wideBatches)).toBeLessThanOrEqual(600);
  expect(batches[`public.${narrow}`]).toEqual([8192, 1808]);
  for (const table of [wide, narrow]) {
    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
  }
});
