import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { afterAll, expect, test } from 'vitest';
import { COMMITS_DDL, CommitRecords, newestCommit } from '../stores/duckdb/change-log/commit-records.js';
import { DDL } from '../stores/duckdb/change-log/log-schema.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';

const dir = mkdtempSync(join(tmpdir(), 'featureflow-commits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` on a database of its own holding `_commits`, and its records. */
async function withRecords(body: (c: DuckDBConnection, records: CommitRecords) => Promise<void>): Promise<void> {
  const db = await openDuckDB(':memory:');
  try {
    await db.connection.run(COMMITS_DDL);
    await body(db.connection, await CommitRecords.open(db.connection));
  } finally {
    db.close();
  }
}

test('the newest record holds every position, through pruning and after reopening', () =>
  withRecords(async (c, records) => {
    expect(records.checkpoint).toBeNull();
    await records.appendCommitted(null, new Map([['debezium', 10n]]));
    // Past the pruning point: the position recorded once, at the start, survives it.
    for (let i = 1; i <= 4200; i++) await records.appendCommitted(BigInt(i), new Map([['bus', BigInt(i * 2)]]));
    const count = Number((await c.runAndReadAll('SELECT count(*) FROM _commits')).getRows()[0]![0]);
    expect(count).toBeLessThan(1000);
    const reopened = await CommitRecords.open(c);
    expect(reopened.checkpoint).toBe(4200n);
    expect(reopened.published('debezium')).toBe(10n);
    expect(reopened.published('bus')).toBe(8400n);
    expect(reopened.published('other')).toBeNull();
    // Outside a transaction, a position alone keeps the checkpoint.
    await reopened.appendCommitted(undefined, new Map([['other', 3n]]));
    expect((await newestCommit(c))?.lsn).toBe(4200n);
  }));

test('a record of a rolled-back transaction is forgotten', () =>
  withRecords(async (c, records) => {
    await records.appendCommitted(5n, new Map([['bus', 5n]]));
    await c.run('BEGIN');
    await records.append(undefined, new Map([['bus', 7n]]));
    await records.append(9n);
    // The open transaction's record counts for this connection until it ends.
    expect(records.checkpoint).toBe(9n);
    expect(records.published('bus')).toBe(7n);
    await c.run('ROLLBACK');
    records.rolledBack();
    expect(records.checkpoint).toBe(5n);
    expect(records.published('bus')).toBe(5n);
    expect((await newestCommit(c))?.lsn).toBe(5n);
    await records.reload();
    expect(records.checkpoint).toBe(5n);
  }));

test('a file from before commit records: read as it is, then migrated by the writer', async () => {
  const path = join(dir, 'legacy.duckdb');
  const instance = await DuckDBInstance.create(path);
  const old = await instance.connect();
  // This version's tables, but the checkpoint in `_checkpoint.lsn` and the positions in `_published`.
  await old.run(DDL);
  await old.run('DROP TABLE _commits; ALTER TABLE _checkpoint ADD COLUMN lsn UBIGINT');
  await old.run(`INSERT INTO _checkpoint (id, slot, tables, snapshot_lsn, updated_at, lsn)
                   VALUES (1, 'ff_slot', '["public.t"]', 1000, now(), 1234)`);
  await old.run('CREATE TABLE _published (publisher VARCHAR PRIMARY KEY, commit_lsn UBIGINT NOT NULL)');
  await old.run(`INSERT INTO _published VALUES ('kafka-bus:ff', 1200)`);
  old.closeSync();
  instance.closeSync();

  // Read only, nothing may change the file: its checkpoint is read from `_checkpoint`.
  const reader = new DuckDBChangeLog(path, { readOnly: true });
  await reader.open();
  expect((await reader.state()).checkpoint).toBe(1234n);
  await reader.close();

  const log = new DuckDBChangeLog(path);
  await log.open();
  try {
    const state = await log.state();
    expect(state.checkpoint).toBe(1234n);
    expect(state.sourceRecord).toEqual({ slot: 'ff_slot' });
    expect(await log.published('kafka-bus:ff')).toBe(1200n);
    const layout = (
      await log.connection.runAndReadAll(
        `SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = '_published'),
                (SELECT count(*) FROM duckdb_columns() WHERE table_name = '_checkpoint' AND column_name = 'lsn')`,
      )
    ).getRows()[0]!;
    expect(layout.map(Number)).toEqual([0, 0]);
  } finally {
    await log.close();
  }
  // Opened again, the migrated file reads the same.
  const again = new DuckDBChangeLog(path);
  await again.open();
  try {
    expect((await again.state()).checkpoint).toBe(1234n);
    expect(await again.published('kafka-bus:ff')).toBe(1200n);
  } finally {
    await again.close();
  }
});
