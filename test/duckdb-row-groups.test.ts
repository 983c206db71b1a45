import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';

const dir = mkdtempSync(join(tmpdir(), 'featureflow-row-groups-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a writer's file keeps row groups of 4096 rows, on every connection, across a reopen", async () => {
  const path = join(dir, 'store.duckdb');
  const db = await openDuckDB(path);
  await db.connection.run('CREATE TABLE t AS SELECT range AS id FROM range(10000)');
  // Another connection sees the same file (the store's catalog is each connection's default).
  const other = await db.connect();
  expect((await other.runAndReadAll('SELECT count(*) FROM t')).getRows()).toEqual([[10000n]]);
  other.closeSync();
  await db.connection.run('CHECKPOINT');
  const groups = async (c: typeof db.connection) =>
    (await c.runAndReadAll("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')")).getRows();
  expect(await groups(db.connection)).toEqual([[3n]]);
  db.close();
  // Read back by a reader (the file opened directly) and by a writer again.
  const reader = await openDuckDB(path, { readOnly: true });
  expect((await reader.connection.runAndReadAll('SELECT count(*), sum(id) FROM t')).getRows()).toEqual([
    [10000n, 49995000n],
  ]);
  reader.close();
  const again = await openDuckDB(path);
  expect(await groups(again.connection)).toEqual([[3n]]);
  again.close();
});
