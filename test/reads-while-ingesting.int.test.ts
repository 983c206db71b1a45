import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FeatureflowError } from '../framework/errors.js';
import { entity, featureView, int32, text } from '../framework/features/index.js';
import type { ExportManifest } from '../framework/interfaces/offline-store.js';
import { parsePosition } from '../framework/types.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import {
  DuckDBOfflineStore,
  duckdb,
  openOfflineStore,
  RemoteOfflineStore,
  READER_MEMORY_LIMIT,
} from '../stores/duckdb/index.js';
import { parseMemory } from '../stores/duckdb/offline/duckdb-offline-store.js';
import { readSocketPath } from '../stores/duckdb/offline/read-protocol.js';
import { pgClient, pgUrl, randomName, waitFor } from './helpers.js';

// `featureflow ingest` (and `serve`) hold the DuckDB file, which DuckDB lets no other process open:
// exports and readers of other processes read through the running process, over its socket, each
// consistent as of one checkpoint, while the ingest goes on.

const run = promisify(execFile);
const BIN = resolve('bin/featureflow.js');
const ROWS = 500;
/** Rows of the spine of the export that runs while the ingest applies changes. */
const BIG_SPINE = 300_000;

let db: pg.Client;
beforeAll(async () => {
  db = await pgClient();
});
afterAll(async () => {
  await db?.end();
});

/** The test's own definition of the config's view (the default transform: the same fingerprint). */
function valsView(table: string) {
  const row = entity({ name: 'row', keys: ['id'] });
  return featureView({ name: 'vals', version: 1, entity: row, source: table, features: { v: int32, note: text } });
}

/** A project folder with a config of one table and the view `vals` (v, note) over it. */
function project(table: string, extra = ''): { dir: string; store: string } {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-reads-'));
  writeFileSync(
    join(dir, 'featureflow.config.ts'),
    [
      `import { defineConfig, entity, featureView, int32, postgres, text } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `const row = entity({ name: 'row', keys: ['id'] });`,
      `const vals = featureView({ name: 'vals', version: 1, entity: row, source: '${table}', features: { v: int32, note: text } });`,
      `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${randomName('slot')}', publication: '${randomName('pub')}' }),`,
      `  features: { views: [vals] }, logLevel: 'warn'${extra} });`,
    ].join('\n'),
  );
  return { dir, store: join(dir, '.featureflow', 'featureflow.duckdb') };
}

/** A table of ROWS rows, every `v` 0: a writer that adds 1 to every row per transaction keeps them equal. */
async function createTable(table: string): Promise<void> {
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await db.query(`INSERT INTO ${table} SELECT g, 0, 'row ' || g FROM generate_series(1, ${ROWS}) g`);
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

/** Starts `featureflow <command>` in the project folder. */
function start(dir: string, command: 'ingest' | 'serve'): Running {
  const child = spawn(process.execPath, [BIN, command], {
    cwd: dir,
    env: { ...process.env, DATABASE_URL: pgUrl(), FEATUREFLOW_LOG_LEVEL: 'warn' },
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, output: () => output };
}

async function cli(args: string[], dir: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...process.env, DATABASE_URL: pgUrl() },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Waits until the running process answers reads of the store; returns its client. */
async function remoteOf(store: string, running: Running): Promise<RemoteOfflineStore> {
  let remote: RemoteOfflineStore | null = null;
  await waitFor(
    'the process to answer reads',
    async () => {
      if (running.child.exitCode !== null) throw new Error(`it exited: ${running.output()}`);
      remote = await RemoteOfflineStore.connect(store);
      return remote !== null;
    },
    120_000,
  );
  return remote!;
}

/** Until stopped: transactions adding 1 to `v` of every row, up to ten a second. */
function startWriter(table: string): { stop(): Promise<number> } {
  let writing = true;
  let done = 0;
  const loop = (async () => {
    const w = await pgClient();
    try {
      while (writing) {
        await w.query(`UPDATE ${table} SET v = v + 1`);
        done += 1;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await w.end();
    }
  })();
  return {
    async stop() {
      writing = false;
      await loop;
      return done;
    },
  };
}

async function slotLsn(slotOf: string): Promise<bigint> {
  const { rows } = await db.query(
    'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
    [slotOf],
  );
  return rows[0]?.lsn ? parsePosition(rows[0].lsn as string) : 0n;
}

function slotOfConfig(dir: string): string {
  return /slot: '([a-z0-9_]+)'/.exec(readFileSync(join(dir, 'featureflow.config.ts'), 'utf8'))![1]!;
}

type Row = { id: number; v: number; note: string | null };

/**
 * The view's rows as of a watermark: every row of the table (whose ids and notes PostgreSQL holds
 * unchanged) with `v` the number of the writer's transactions (started after the snapshot, from v 0)
 * committed up to the watermark, as the change log (checked against PostgreSQL by the other tests)
 * records them; read once nothing holds the store.
 */
async function viewAt(store: string, table: string, watermark: bigint): Promise<Map<number, Row>> {
  const log = await openDuckDB(store, { readOnly: true });
  let committed: number;
  try {
    const [[count]] = (
      await log.connection.runAndReadAll(
        `SELECT count(DISTINCT commit_lsn) FROM change_log
           WHERE table_name = $table AND op = 'u' AND commit_lsn <= ${watermark}::UBIGINT`,
        { table: `public.${table}` },
      )
    ).getRows() as [[bigint]];
    committed = Number(count);
  } finally {
    log.close();
  }
  const { rows } = await db.query(`SELECT id, note FROM ${table} ORDER BY id`);
  return new Map(
    (rows as { id: number; note: string | null }[]).map((r) => [r.id, { id: r.id, v: committed, note: r.note }]),
  );
}

function rowsOf(table: arrow.Table): Map<number, Row> {
  const out = new Map<number, Row>();
  for (const r of table.toArray() as { id: number; v: number; note: string | null }[])
    out.set(Number(r.id), { id: Number(r.id), v: r.v, note: r.note });
  return out;
}

async function parquetRows(path: string): Promise<Map<number, Row>> {
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    const rows = (await c.runAndReadAll(`SELECT id, v, note FROM read_parquet('${path}')`)).getRows() as [
      number,
      number,
      string | null,
    ][];
    return new Map(rows.map(([id, v, note]) => [id, { id, v, note }]));
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

/** Writes a spine of `rows` rows (ids cycling over the table) with one event time far ahead. */
async function writeSpine(path: string, rows: number): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  await c.run(
    `COPY (SELECT (range % ${ROWS} + 1)::INTEGER AS id, TIMESTAMPTZ '2100-01-01 00:00:00+00' AS event_timestamp, range AS n FROM range(${rows}))
       TO '${path}' (FORMAT parquet)`,
  );
  c.closeSync();
  instance.closeSync();
}

function manifestOf(path: string): ExportManifest {
  return JSON.parse(readFileSync(`${path}.manifest.json`, 'utf8')) as ExportManifest;
}

/** Every row holds the same `v`: a state between two of the writer's transactions, not a torn one. */
function expectOneState(rows: Map<number, Row>): number {
  const values = new Set([...rows.values()].map((r) => r.v));
  expect(rows.size).toBe(ROWS);
  expect(values.size).toBe(1);
  return [...values][0]!;
}

async function stop(running: Running): Promise<void> {
  running.child.kill('SIGINT');
  expect(await running.exited, running.output()).toBe(0);
}

describe('reads while featureflow ingest runs', () => {
  test('export (Parquet, Arrow training set) and openOfflineStore answer through the ingest, each as of one checkpoint, while it keeps applying changes', async () => {
    const table = randomName('reads');
    await createTable(table);
    const { dir, store } = project(table);
    const ingest = start(dir, 'ingest');
    let writer: { stop(): Promise<number> } | undefined;
    try {
      const remote = await remoteOf(store, ingest);
      // Writes start once the snapshot is in: every row then holds v = the writer's transactions so far.
      await waitFor('the snapshot', async () => ((await remote.status())[0]?.entities ?? 0) === ROWS, 120_000);
      writer = startWriter(table);
      const spine = join(dir, 'spine.parquet');
      await writeSpine(spine, ROWS);
      await waitFor('the writer’s changes to reach the history', async () => {
        const [status] = await remote.status();
        return (status?.rows ?? 0) > 3 * ROWS;
      });

      // The CLI, as a user runs it beside the ingest.
      const latestFile = join(dir, 'latest.parquet');
      const exported = await cli(['export', 'vals', '--out', latestFile], dir);
      expect(exported.code, exported.stderr).toBe(0);
      const trainFile = join(dir, 'train.arrow');
      const trained = await cli(['export', 'vals', '--spine', spine, '--out', trainFile], dir);
      expect(trained.code, trained.stderr).toBe(0);

      // TypeScript readers: openOfflineStore hands out a client of the ingest.
      const reader = await openOfflineStore(store, { definitions: { views: [valsView(table)] } });
      expect(reader).toBeInstanceOf(RemoteOfflineStore);
      const latest = rowsOf(await reader.latest('vals'));
      expectOneState(latest);
      const spineRows = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, event_timestamp: new Date('2100-01-01') }));
      const fromRows = await reader.trainingSet({ spine: spineRows, features: ['vals'] });
      expect(fromRows.numRows).toBe(50);
      expect(new Set(fromRows.toArray().map((r) => r.v)).size).toBe(1);
      const fromArrow = await reader.trainingSet({
        spine: arrow.tableFromArrays({ id: Int32Array.from([7, 3]), event_timestamp: ['2100-01-01', '2100-01-01'] }),
        features: [valsView(table).select('note')],
      });
      expect(fromArrow.toArray().map((r) => r.note)).toEqual(['row 7', 'row 3']);
      const error = await reader.latest('nope').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FeatureflowError);
      expect(error).toMatchObject({ code: 'FF_EXPORT', message: expect.stringMatching(/nope has no table/) });
      // A definition other than the stored one is refused, as a local reader refuses it.
      const changed = featureView({
        name: 'vals',
        version: 1,
        entity: entity({ name: 'row', keys: ['id'] }),
        source: table,
        features: { v: int32 },
      });
      expect(await reader.latest(changed).catch((e: unknown) => e)).toMatchObject({ code: 'FF_FEATURE_VERSION' });

      // A long export (a training set of a big spine) does not hold the ingest up: the slot's
      // confirmed position (moved after each DuckDB commit) keeps advancing while it runs.
      const bigSpine = join(dir, 'big-spine.parquet');
      await writeSpine(bigSpine, BIG_SPINE);
      const slot = slotOfConfig(dir);
      const before = await slotLsn(slot);
      let advancedDuringExport = false;
      let exporting = true;
      const exportDone = reader
        .export({ trainingSet: { spine: bigSpine, features: ['vals'] } }, join(dir, 'big.arrow'))
        .finally(() => (exporting = false));
      while (exporting) {
        if ((await slotLsn(slot)) > before && exporting) advancedDuringExport = true;
        await new Promise((r) => setTimeout(r, 50));
      }
      const big = await exportDone;
      expect(big.rows).toBe(BIG_SPINE);
      expect(advancedDuringExport).toBe(true);
      const bigTable = arrow.tableFromIPC(readFileSync(join(dir, 'big.arrow')));
      expect(bigTable.numRows).toBe(BIG_SPINE);
      expect(new Set(bigTable.getChild('v')!.toArray()).size).toBe(1);
      reader.close();

      const applied = await writer!.stop();
      expect(applied).toBeGreaterThan(3);
      await stop(ingest);
      expect(existsSync(readSocketPath(store))).toBe(false);

      // Each export equals the view's history at the watermark its manifest names.
      const latestManifest = manifestOf(latestFile);
      expect(latestManifest.views[0]!.watermarkLsn).toBe(latestManifest.lsnWatermark);
      const atLatest = await viewAt(store, table, parsePosition(latestManifest.lsnWatermark!));
      const latestRows = await parquetRows(latestFile);
      expectOneState(latestRows);
      expect(latestRows).toEqual(atLatest);

      const trainManifest = manifestOf(trainFile);
      expect(trainManifest).toMatchObject({ kind: 'trainingSet', format: 'arrow', rows: ROWS });
      const atTrain = await viewAt(store, table, parsePosition(trainManifest.lsnWatermark!));
      const trainRows = rowsOf(arrow.tableFromIPC(readFileSync(trainFile)));
      expectOneState(trainRows);
      expect(trainRows).toEqual(atTrain);

      const atBig = await viewAt(store, table, parsePosition(big.manifest.lsnWatermark!));
      expect(Number(bigTable.getChild('v')!.get(0))).toBe([...atBig.values()][0]!.v);
    } finally {
      await writer?.stop().catch(() => undefined);
      if (ingest.child.exitCode === null) ingest.child.kill('SIGKILL');
    }
  }, 300_000);

  test('a socket file left by a killed ingest is replaced by the next one', async () => {
    const table = randomName('stale');
    await createTable(table);
    const { dir, store } = project(table);
    const first = start(dir, 'ingest');
    const firstRemote = await remoteOf(store, first);
    expect(firstRemote.pid).toBe(first.child.pid);
    await waitFor('the snapshot', async () => ((await firstRemote.status())[0]?.entities ?? 0) === ROWS);
    first.child.kill('SIGKILL');
    await first.exited;
    const socket = readSocketPath(store);
    // The killed process could not remove its socket; nothing answers on it.
    expect(existsSync(socket)).toBe(true);
    expect(await RemoteOfflineStore.connect(store)).toBeNull();
    // Nothing holds the file: it is read directly.
    const local = await openOfflineStore(store);
    expect(local).toBeInstanceOf(DuckDBOfflineStore);
    expect((await local.latest('vals')).numRows).toBe(ROWS);
    local.close();

    const second = start(dir, 'ingest');
    try {
      const remote = await remoteOf(store, second);
      expect(remote.pid).toBe(second.child.pid);
      const reader = await openOfflineStore(store);
      expect(reader).toBeInstanceOf(RemoteOfflineStore);
      expect((await reader.latest('vals')).numRows).toBe(ROWS);
      await stop(second);
      expect(existsSync(socket)).toBe(false);
    } finally {
      if (second.child.exitCode === null) second.child.kill('SIGKILL');
    }
  });

  test('a process holding the file without answering reads: FF_STORE_LOCKED says it does not share reads', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-reads-'));
    const store = join(dir, 'held.duckdb');
    const seed = await openDuckDB(store);
    seed.close();
    // A DuckDB writer that is not featureflow (or an older featureflow): it holds the lock, no socket.
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { DuckDBInstance } from '@duckdb/node-api';
         const db = await DuckDBInstance.create(${JSON.stringify(store)});
         await db.connect();
         process.stdout.write('held\\n');
         setInterval(() => {}, 1000);`,
      ],
      { cwd: resolve('.') },
    );
    try {
      await new Promise<void>((r) => holder.stdout.once('data', () => r()));
      const error = await openOfflineStore(store).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FeatureflowError);
      expect(error).toMatchObject({ code: 'FF_STORE_LOCKED' });
      expect((error as Error).message).toMatch(/does not share reads: nothing answers on .*\.held\.duckdb\.sock/);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  test('featureflow export works beside featureflow serve', async () => {
    const table = randomName('beside');
    await createTable(table);
    const { dir } = project(table, ', serve: { port: 0 }');
    const serve = start(dir, 'serve');
    try {
      await waitFor(
        'serve to listen',
        () => {
          if (serve.child.exitCode !== null) throw new Error(serve.output());
          return /serving on/.test(serve.output());
        },
        60_000,
      );
      await db.query(`UPDATE ${table} SET v = 5, note = 'served' WHERE id <= 10`);
      const out = join(dir, 'served.parquet');
      await waitFor('the update to be exported', async () => {
        const exported = await cli(['export', 'vals', '--out', out], dir);
        expect(exported.code, exported.stderr).toBe(0);
        return [...(await parquetRows(out)).values()].filter((r) => r.note === 'served').length === 10;
      });
      expect(manifestOf(out).lsnWatermark).not.toBeNull();
      serve.child.kill('SIGTERM');
      expect(await serve.exited, serve.output()).toBe(0);
    } finally {
      if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
    }
  });
});

describe('the memory of a reader', () => {
  test('a read-only store takes the memory limit it is given (512 MB by default, duckdb({ memoryLimit }) through the adapter), and a read that needs more fails coded or spills', async () => {
    // A store with a big view: 200k entities of 200-byte notes.
    const table = randomName('mem');
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await db.query(`INSERT INTO ${table} SELECT g, g, repeat(md5(g::text), 6) FROM generate_series(1, 200000) g`);
    const { dir: projectDir, store } = project(table);
    const ingested = await cli(['ingest', '--until-caught-up'], projectDir);
    expect(ingested.code, ingested.stderr).toBe(0);

    const limitOf = async (reader: unknown) => {
      expect(reader).toBeInstanceOf(DuckDBOfflineStore);
      const c = (reader as DuckDBOfflineStore).connection;
      return parseMemory((await c.runAndReadAll(`SELECT current_setting('memory_limit')`)).getRows()[0]![0] as string)!;
    };
    const near = (bytes: number, limit: string) => Math.abs(bytes - parseMemory(limit)!) / parseMemory(limit)! < 0.1;

    const byDefault = await openOfflineStore(store);
    expect(near(await limitOf(byDefault), READER_MEMORY_LIMIT)).toBe(true);
    byDefault.close();
    const throughAdapter = await duckdb({ path: store, memoryLimit: '48MB' }).openReader({});
    expect(near(await limitOf(throughAdapter), '48MB')).toBe(true);
    throughAdapter.close();

    // 8 MB cannot hold the latest rows (~50 MB): the read spills to disk and comes back whole, or
    // fails with a coded error naming the limit; it never takes the machine's memory.
    const small = await openOfflineStore(store, { memoryLimit: '8MB' });
    expect(near(await limitOf(small), '8MB')).toBe(true);
    const outcome = await small.latest('vals').catch((e: unknown) => e);
    if (outcome instanceof arrow.Table) {
      expect(outcome.numRows).toBe(200_000);
    } else {
      expect(outcome).toBeInstanceOf(FeatureflowError);
      expect(outcome).toMatchObject({ code: 'FF_EXPORT', message: expect.stringMatching(/memoryLimit/) });
    }
    small.close();
  });
});
