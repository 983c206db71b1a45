import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';
import { batchOf } from './features-helpers.js';

// What each change publisher sent is kept in the checkpoint's row, so that a publishing ingest's
// commit updates one row of one table; files that kept it in a table of its own are migrated. The
// source's own progress (e.g. Kafka offsets) goes in the same row, written at the same commit.

const TABLES = ['public.t'];
/** Beyond 2^53: positions are kept exactly. */
const FAR = 2n ** 60n + 7n;

async function withLog<T>(path: string, work: (log: DuckDBChangeLog) => Promise<T>): Promise<T> {
  const log = new DuckDBChangeLog(path);
  await log.open();
  try {
    return await work(log);
  } finally {
    await log.close();
  }
}

describe('publisher positions in the change log', () => {
  test('each publisher’s position is kept across reopening and a new snapshot, exactly', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-published-')), 'log.duckdb');
    await withLog(path, async (log) => {
      await log.reset({ tables: TABLES, point: 0n });
      expect(await log.published('bus')).toBeNull();
      await log.savePublished('bus', 5n);
      await log.savePublished('debezium', FAR);
      await log.savePublished('bus', 9n);
    });
    await withLog(path, async (log) => {
      expect(await log.published('bus')).toBe(9n);
      expect(await log.published('debezium')).toBe(FAR);
      expect(await log.published('other')).toBeNull();
      // A new snapshot starts the log again; what publishers sent stays recorded.
      await log.reset({ tables: TABLES, point: 3n });
      expect(await log.published('bus')).toBe(9n);
      await log.savePublished('other', 1n);
    });
    await withLog(path, async (log) => {
      expect([await log.published('bus'), await log.published('debezium'), await log.published('other')]).toEqual([
        9n,
        FAR,
        1n,
      ]);
    });
  });

  test('a file that kept the positions in a table of their own is migrated when a writer opens it', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-published-old-')), 'log.duckdb');
    await withLog(path, (log) => log.reset({ tables: TABLES, point: 0n }));
    // The layout before: no column in the checkpoint's row, a table `_published`.
    const db = await openDuckDB(path);
    try {
      await db.connection.run(
        `ALTER TABLE _checkpoint DROP COLUMN published;
         CREATE TABLE _published (publisher VARCHAR PRIMARY KEY, commit_lsn UBIGINT NOT NULL);
         INSERT INTO _published VALUES ('bus', 12), ('debezium', ${FAR})`,
      );
    } finally {
      db.close();
    }
    await withLog(path, async (log) => {
      expect(await log.published('bus')).toBe(12n);
      expect(await log.published('debezium')).toBe(FAR);
      await log.savePublished('bus', 13n);
      const tables = (
        await log.connection.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = '_published'`)
      ).getRows();
      expect(Number(tables[0]![0])).toBe(0);
    });
    await withLog(path, async (log) => {
      expect(await log.published('bus')).toBe(13n);
      expect(await log.published('debezium')).toBe(FAR);
    });
  });

  test('the source’s record is written by the commit that makes its batch durable, and dropped with a rollback', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-source-record-')), 'log.duckdb');
    const none = { batches: [], deadLetters: [] };
    const batch = (checkpoint: bigint, offset: number) => ({
      ...batchOf({ changes: [], complete: true, checkpoint, schemas: [] }),
      sourceRecord: { topics: ['t'], offsets: { '0': String(offset) } },
    });
    await withLog(path, async (log) => {
      await log.reset({ tables: TABLES, point: 0n });
      await log.apply(batch(10n, 1), none);
      expect((await log.state()).sourceRecord).toEqual({ topics: ['t'], offsets: { '0': '1' } });
      // Complete but left open (a group's earlier batch): the later batch's commit writes the newest record.
      await log.apply(batch(11n, 2), none, { commit: false });
      await log.apply(batch(12n, 3), none, { published: new Map([['bus', 12n]]) });
      expect((await log.state()).sourceRecord).toEqual({ topics: ['t'], offsets: { '0': '3' } });
      expect(await log.published('bus')).toBe(12n);
      // Rolled back: neither the record nor the checkpoint moves.
      await log.apply(batch(13n, 4), none, { commit: false });
      await log.rollback();
      expect((await log.state()).checkpoint).toBe(12n);
      // A commit with no record of its own leaves the one written before.
      await log.apply(batchOf({ changes: [], complete: true, checkpoint: 15n, schemas: [] }), none);
    });
    await withLog(path, async (log) => {
      const state = await log.state();
      expect(state.sourceRecord).toEqual({ topics: ['t'], offsets: { '0': '3' } });
      expect(state.checkpoint).toBe(15n);
    });
  });
});
