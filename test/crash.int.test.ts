import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, readChangeLog, testConfig, waitFor, withTables, type TestConfig } from './helpers.js';
import { compareWithPostgres, inTransaction } from './ingest-harness.js';
import type { ChildConfig } from './fixtures/ingest-child.js';

// The ingest process is killed with SIGKILL (no cleanup of any kind) during the snapshot and during
// streaming, then started again with --until-caught-up. Nothing may be lost or applied twice.

const FIXTURE = fileURLToPath(new URL('./fixtures/ingest-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface ChildLine {
  event: 'batch' | 'done' | 'error';
  changes?: number;
  complete?: boolean;
  snapshot?: { table: string; done: boolean } | null;
  snapshotted?: boolean;
  code?: string;
  message?: string;
}

/** What the child makes its config from: the adapters' settings and the rest of the config. */
function childConfig(config: TestConfig): ChildConfig {
  return { source: config.source.config, store: config.store.config, ingest: config.ingest, logLevel: config.logLevel };
}

/** An ingest child process and the JSON lines it printed. */
class IngestChild {
  readonly lines: ChildLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly proc: ChildProcess;
  private stderr = '';

  constructor(
    config: TestConfig,
    options: { untilCaughtUp?: boolean; freeze?: { snapshotBatches?: number; incompleteBatches?: number } } = {},
  ) {
    this.proc = spawn(
      process.execPath,
      ['--import', 'tsx', FIXTURE, ...(options.untilCaughtUp ? ['--until-caught-up'] : [])],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          FF_CHILD_CONFIG: JSON.stringify(childConfig(config)),
          FF_CHILD_FREEZE: JSON.stringify(options.freeze ?? {}),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    createInterface({ input: this.proc.stdout! }).on('line', (line) => this.lines.push(JSON.parse(line) as ChildLine));
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
    children.add(this);
  }

  /** Waits until a printed line satisfies `check`; fails early (with the child's stderr) if it exits. */
  async waitForLine(what: string, check: (lines: ChildLine[]) => boolean): Promise<void> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    await waitFor(
      what,
      () => {
        if (check(this.lines)) return true;
        if (exited)
          throw new Error(
            `the ingest child exited before ${what}:\n${JSON.stringify(this.lines.slice(-3))}\n${this.stderr}`,
          );
        return false;
      },
      60_000,
    );
  }

  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    expect(await this.exited).toBeNull();
    children.delete(this);
  }

  /** Waits for a normal exit and returns the final `done` line. */
  async finished(): Promise<ChildLine> {
    const code = await this.exited;
    children.delete(this);
    const last = this.lines.at(-1);
    if (code !== 0 || last?.event !== 'done')
      throw new Error(`the ingest child failed (exit ${code}): ${JSON.stringify(last)}\n${this.stderr}`);
    return last;
  }
}

const children = new Set<IngestChild>();
let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterEach(async () => {
  for (const child of children) await child.kill().catch(() => undefined);
});
afterAll(async () => {
  await client?.end();
});

/** Changes per xid in the stream part of the log. */
function perXid(changes: { op: string; xid: number }[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const c of changes) if (c.op !== 'r') counts.set(c.xid, (counts.get(c.xid) ?? 0) + 1);
  return counts;
}

describe('SIGKILL of the ingest process', () => {
  test('during the snapshot: the next run takes the snapshot again, and the log holds exactly one', async () => {
    const table = randomName('crash_snap');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
    await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 20000) g`);
    // A small table snapshotted first (durable when the kill comes), then the big one.
    const small = `${table}_first`;
    await client.query(`CREATE TABLE ${small} (id int PRIMARY KEY)`);
    await client.query(`INSERT INTO ${small} SELECT generate_series(1, 100)`);
    const config = testConfig([small, table], { ingest: { snapshotBatchSize: 1000, heartbeatSeconds: 1 } });

    const first = new IngestChild(config, { freeze: { snapshotBatches: 6 } });
    await first.waitForLine('6 snapshot batches', (lines) => lines.filter((l) => l.snapshot).length === 6);
    await first.kill();
    // The interrupted snapshot left the first table whole and nothing of the table it was reading
    // (a table's snapshot commits once, at its end): never half a table.
    const partial = await readChangeLog(config.store.config.path);
    expect(partial.changes.filter((c) => c.op === 'r' && c.table === `public.${small}`)).toHaveLength(100);
    expect(partial.changes.filter((c) => c.op === 'r' && c.table === `public.${table}`)).toHaveLength(0);

    // Changes between the crash and the next run end up in the new snapshot.
    await client.query(`UPDATE ${table} SET v = 'changed' WHERE id % 100 = 0`);
    await client.query(`DELETE FROM ${table} WHERE id % 100 = 1`);
    await client.query(`INSERT INTO ${table} VALUES (20001, 'late')`);

    const second = new IngestChild(config, { untilCaughtUp: true });
    expect((await second.finished()).snapshotted).toBe(true);

    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const reads = changes.filter((c) => c.op === 'r' && c.table === `public.${table}`);
    const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(reads).toHaveLength(rows[0].n);
    expect(new Set(reads.map((c) => c.key)).size).toBe(rows[0].n);
    expect(changes.filter((c) => c.op !== 'r')).toHaveLength(0);
    expect(changes.filter((c) => c.op === 'r')).toHaveLength(rows[0].n + 100);
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    const snapshotRows = (await db.connection.runAndReadAll('SELECT rows, done FROM _snapshot_tables')).getRows();
    db.close();
    expect(snapshotRows.map(([n, done]) => [Number(n), done]).sort()).toEqual(
      [
        [100, true],
        [rows[0].n, true],
      ].sort(),
    );
    const smallReads = (await readChangeLog(config.store.config.path)).changes.filter(
      (c) => c.table === `public.${small}`,
    );
    expect(smallReads).toHaveLength(100);
    // The first run's slot was replaced, not left behind.
    const slots = await client.query('SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1', [
      config.source.config.slot,
    ]);
    expect(slots.rows[0].n).toBe(1);
  });

  test("during the snapshot of a table added later: the next run takes it again, the log's slot and other table untouched", async () => {
    const kept = randomName('crash_kept');
    const added = randomName('crash_added');
    await client.query(`CREATE TABLE ${kept} (id int PRIMARY KEY, v int NOT NULL)`);
    await client.query(`INSERT INTO ${kept} SELECT g, g FROM generate_series(1, 100) g`);
    await client.query(`CREATE TABLE ${added} (id int PRIMARY KEY, v text NOT NULL)`);
    await client.query(`INSERT INTO ${added} SELECT g, 'v' || g FROM generate_series(1, 20000) g`);
    const config = testConfig([kept], { ingest: { snapshotBatchSize: 1000, heartbeatSeconds: 1 } });
    await new IngestChild(config, { untilCaughtUp: true }).finished();

    const both = withTables(config, [`public.${kept}`, `public.${added}`]);
    const xids: number[] = [];
    const change = async () => {
      xids.push(await inTransaction(client, () => client.query(`UPDATE ${kept} SET v = v + 1 WHERE id % 10 = 0`)));
      await client.query(`UPDATE ${added} SET v = 'changed' WHERE id % 100 = $1`, [xids.length]);
    };
    await change();
    const first = new IngestChild(both, { freeze: { snapshotBatches: 6 } });
    await first.waitForLine('6 snapshot batches', (lines) => lines.filter((l) => l.snapshot).length === 6);
    await first.kill();
    const partial = await readChangeLog(config.store.config.path);
    expect(partial.changes.filter((c) => c.table === `public.${added}`)).toHaveLength(0);
    // The temporary slot went with the killed process's connection; the log's own slot stays.
    await waitFor('the temporary slot to go', async () => {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1`, [
        `${config.source.config.slot}_added`,
      ]);
      return rows[0].n === 0;
    });
    const { rows: slots } = await client.query(
      'SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1',
      [config.source.config.slot],
    );
    expect(slots[0].n).toBe(1);

    await change();
    const second = new IngestChild(both, { untilCaughtUp: true });
    expect((await second.finished()).snapshotted).toBe(true);
    for (const t of [kept, added]) {
      const { diff } = await compareWithPostgres(client, both, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
    }
    const { changes } = await readChangeLog(config.store.config.path);
    const counts = perXid(changes.filter((c) => c.table === `public.${kept}`));
    expect([...counts.keys()].sort()).toEqual([...xids].sort());
    for (const n of counts.values()) expect(n).toBe(10);
    const reads = changes.filter((c) => c.op === 'r' && c.table === `public.${added}`);
    expect(reads).toHaveLength(20000);
    expect(new Set(reads.map((c) => c.key)).size).toBe(20000);
  });

  test('while a table is read again after ADD COLUMN … DEFAULT: the next run reads it again, once, and nothing else is lost', async () => {
    const table = randomName('crash_reread');
    const other = randomName('crash_reread_other');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text NOT NULL)`);
    await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, 20000) g`);
    await client.query(`CREATE TABLE ${other} (id int PRIMARY KEY, n int NOT NULL)`);
    await client.query(`INSERT INTO ${other} VALUES (1, 0)`);
    const config = testConfig([table, other], { ingest: { snapshotBatchSize: 1000, heartbeatSeconds: 1 } });
    await new IngestChild(config, { untilCaughtUp: true }).finished();

    const xid = await inTransaction(client, async () => {
      await client.query(`UPDATE ${other} SET n = 1`);
      await client.query(`ALTER TABLE ${table} ADD COLUMN fixed int DEFAULT 7`);
      await client.query(`UPDATE ${table} SET v = 'changed' WHERE id = 1`);
    });
    // Killed after five batches of the table read again (its only batches that leave a transaction open).
    const first = new IngestChild(config, { freeze: { incompleteBatches: 5 } });
    await first.waitForLine(
      '5 batches of the re-read',
      (lines) => lines.filter((l) => l.event === 'batch' && !l.complete).length === 5,
    );
    await first.kill();
    // The transaction with the ALTER is durable, the re-read left nothing; the table is recorded as to be read again.
    const partial = await readChangeLog(config.store.config.path);
    expect(partial.changes.filter((c) => c.table === `public.${table}` && c.op !== 'r').map((c) => c.op)).toEqual([
      'u',
    ]);
    expect(partial.changes.filter((c) => c.table === `public.${table}`)).toHaveLength(20001);

    const second = new IngestChild(config, { untilCaughtUp: true });
    await second.finished();
    for (const t of [table, other]) {
      const { diff } = await compareWithPostgres(client, config, t);
      expect(diff, t).toEqual({ missing: [], extra: [] });
    }
    const { changes } = await readChangeLog(config.store.config.path);
    const ops = changes.filter((c) => c.table === `public.${table}`).map((c) => c.op);
    expect(ops.join('')).toBe(`${'r'.repeat(20000)}ut${'r'.repeat(20000)}`);
    expect([...perXid(changes.filter((c) => c.table === `public.${other}`))]).toEqual([[xid, 1]]);
  });

  test('during streaming, in the middle of a large transaction and between transactions: each transaction once', async () => {
    const table = randomName('crash_stream');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, v text)`);
    await client.query(`INSERT INTO ${table} SELECT g, 0, 'initial' FROM generate_series(1, 100) g`);
    const config = testConfig([table], { ingest: { batchSize: 1000, heartbeatSeconds: 1 } });
    const expected = new Map<number, number>();
    const small = async (i: number) => {
      const xid = await inTransaction(client, () =>
        i % 3 === 0
          ? client.query(`INSERT INTO ${table} VALUES ($1, $2, 'small')`, [100_000 + i, i])
          : i % 3 === 1
            ? client.query(`UPDATE ${table} SET n = n + 1 WHERE id = $1`, [1 + (i % 100)])
            : client.query(`UPDATE ${table} SET v = 'two', n = n + 1 WHERE id IN ($1, $2)`, [
                1 + (i % 50),
                51 + (i % 50),
              ]),
      );
      expected.set(xid, i % 3 === 2 ? 2 : 1);
    };

    // Run 1: killed frozen in the middle of a 30k-row transaction (after 5 of its 30 batches).
    const first = new IngestChild(config, { freeze: { incompleteBatches: 5 } });
    await first.waitForLine('the snapshot', (lines) => lines.some((l) => l.snapshot?.done));
    for (let i = 0; i < 30; i++) await small(i);
    const bigXid = await inTransaction(client, () =>
      client.query(`INSERT INTO ${table} SELECT g, g, 'big' FROM generate_series(1001, 31000) g`),
    );
    expected.set(bigXid, 30_000);
    for (let i = 30; i < 60; i++) await small(i);
    await first.waitForLine(
      '5 batches of the large transaction',
      (lines) => lines.filter((l) => l.complete === false).length === 5,
    );
    await first.kill();
    const afterFirst = perXid((await readChangeLog(config.store.config.path)).changes);
    expect(afterFirst.get(bigXid)).toBeUndefined();

    // Run 2: killed at whatever point it reached while small transactions stream in.
    const second = new IngestChild(config);
    await second.waitForLine('the stream to resume', (lines) => lines.some((l) => l.complete && (l.changes ?? 0) > 0));
    for (let i = 60; i < 160; i++) await small(i);
    await second.kill();

    // Run 3: --until-caught-up picks up the rest.
    for (let i = 160; i < 200; i++) await small(i);
    const third = new IngestChild(config, { untilCaughtUp: true });
    expect((await third.finished()).snapshotted).toBe(false);

    const { diff, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(perXid(changes)).toEqual(expected);
  });
});
