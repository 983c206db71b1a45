import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { DuckDBConnection } from '@duckdb/node-api';
import { inject } from 'vitest';
import { resolveConfig, type FeatureflowConfig, type ResolvedConfig } from '../framework/config.js';
import { DEFAULTS } from '../index.js';
import { postgres, type PostgresAdapter, type PostgresConfig } from '../sources/postgres/index.js';
import { duckdb, type DuckDBAdapter, type DuckDBConfig } from '../stores/duckdb/index.js';
import { toPgParam, decodeRow } from '../framework/value-json.js';
import type { ColumnSchema, Row, TableSchema } from '../framework/types.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { quoteIdent, quoteTable } from '../sources/postgres/pg-connection.js';

/** A random lower-case name for tables, slots and publications, unique per test. */
export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** The URL of the test run's PostgreSQL cluster. */
export function pgUrl(): string {
  return inject('pgUrl');
}

export async function pgClient(url = pgUrl()): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** A resolved config whose adapters are the PostgreSQL source and the DuckDB store (their settings readable). */
export type TestConfig = ResolvedConfig & { readonly source: PostgresAdapter; readonly store: DuckDBAdapter };

/** What a test may override: the source's and store's settings, and the rest of the config. */
export interface TestOverrides extends Partial<Omit<FeatureflowConfig, 'source' | 'store'>> {
  readonly source?: Partial<PostgresConfig>;
  readonly store?: DuckDBConfig;
}

/** A config with its own slot, publication and DuckDB file. */
export function testConfig(tables: string[], overrides: TestOverrides = {}, url = pgUrl()): TestConfig {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-test-'));
  const { source, store, ...rest } = overrides;
  return resolveConfig(
    {
      logLevel: process.env.FEATUREFLOW_TEST_LOG ?? 'silent',
      ...rest,
      // Source settings merge with the test's own slot and publication.
      source: postgres({
        connectionString: url,
        tables,
        slot: randomName('slot'),
        publication: randomName('pub'),
        ...source,
      }),
      // Store settings merge with the test's own file.
      store: duckdb({ path: join(dir, 'featureflow.duckdb'), ...store }),
    },
    DEFAULTS,
  ) as TestConfig;
}

/**
 * Creates `table` partitioned by list on `region` ('eu', 'us'), with `rows` rows (id 1…rows, even ids
 * in 'eu'): key (id, region), a column v = id.
 */
export async function createPartitionedTable(client: pg.Client, table: string, rows: number): Promise<void> {
  await client.query(
    `CREATE TABLE ${table} (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
  );
  await client.query(`CREATE TABLE ${table}_eu PARTITION OF ${table} FOR VALUES IN ('eu')`);
  await client.query(`CREATE TABLE ${table}_us PARTITION OF ${table} FOR VALUES IN ('us')`);
  await client.query(
    `INSERT INTO ${table} SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, ${rows}) g`,
  );
}

/** The same log (file, slot, publication) configured with other tables. */
export function withTables(config: TestConfig, tables: string[]): TestConfig {
  return Object.freeze({ ...config, source: config.source.withTables(tables) as PostgresAdapter });
}

/** A row of the change log as stored. */
export interface LoggedChange {
  seq: bigint;
  table: string;
  op: string;
  key: string | null;
  before: Row | null;
  after: Row | null;
  lsn: bigint;
  commitLsn: bigint;
  xid: number;
}

/** Reads every change of a DuckDB change log file (opened read-only; the writer must be closed). */
export async function readChangeLog(
  path: string,
): Promise<{ changes: LoggedChange[]; schemas: Map<string, TableSchema> }> {
  const db = await openDuckDB(path, { readOnly: true });
  try {
    const schemaRows = (
      await db.connection.runAndReadAll('SELECT table_name, version, columns, key_columns FROM _schemas')
    ).getRows();
    const schemas = new Map<string, TableSchema>();
    for (const [table, version, columns, keyColumns] of schemaRows as [string, number, string, string][]) {
      schemas.set(`${table}#${version}`, { table, columns: JSON.parse(columns), keyColumns: JSON.parse(keyColumns) });
    }
    const rows = (
      await db.connection.runAndReadAll(
        'SELECT seq, table_name, op, key, before, after, lsn, commit_lsn, schema_version, xid FROM change_log ORDER BY seq',
      )
    ).getRows() as [
      bigint,
      string,
      string,
      string | null,
      string | null,
      string | null,
      bigint,
      bigint,
      number,
      bigint,
    ][];
    const changes = rows.map(([seq, table, op, key, before, after, lsn, commitLsn, version, xid]) => {
      const cols = schemas.get(`${table}#${version}`)?.columns ?? [];
      return {
        seq,
        table,
        op,
        key,
        before: before === null ? null : decodeRow(before, cols),
        after: after === null ? null : decodeRow(after, cols),
        lsn: BigInt(lsn),
        commitLsn: BigInt(commitLsn),
        xid: Number(xid),
      };
    });
    return { changes, schemas };
  } finally {
    db.close();
  }
}

/** Replays the change log of one table into its current state: key → row. */
export function replay(changes: readonly LoggedChange[], table: string): Map<string, Row> {
  const state = new Map<string, Row>();
  for (const c of changes) {
    if (c.table !== table) continue;
    if (c.op === 't') state.clear();
    else if (c.op === 'd') state.delete(c.key!);
    else {
      if (c.op === 'u' && c.before) {
        // A primary-key update moves the row: forget the old key.
        for (const [k, row] of state)
          if (Object.keys(JSON.parse(c.key!)).every((col) => sameValue(row[col], c.before![col]))) state.delete(k);
      }
      state.set(c.key!, c.after!);
    }
  }
  return state;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a, big) === JSON.stringify(b, big);
}

function big(_k: string, v: unknown) {
  return typeof v === 'bigint' ? v.toString() : v;
}

/**
 * The oracle: pushes our rows back into PostgreSQL (a temp table of the same row type, every value
 * cast from our exact form) and has PostgreSQL compare them with the table, row text against row
 * text. Returns the rows that differ on either side (empty when equal).
 */
export async function diffAgainstPostgres(
  client: pg.Client,
  table: string,
  rows: Iterable<Row>,
  columns: readonly ColumnSchema[],
): Promise<{ missing: string[]; extra: string[] }> {
  const temp = quoteIdent(randomName('oracle'));
  const names = columns.map((c) => quoteIdent(c.name));
  await client.query(`CREATE TEMP TABLE ${temp} AS SELECT ${names.join(', ')} FROM ${quoteTable(table)} WITH NO DATA`);
  const { rows: typeRows } = await client.query(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS t FROM pg_attribute a
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [temp.replaceAll('"', '')],
  );
  const typeOf = new Map(typeRows.map((r) => [r.attname as string, r.t as string]));
  const placeholders = columns.map((c, i) => `$${i + 1}::${typeOf.get(c.name)}`).join(', ');
  const insert = `INSERT INTO ${temp} (${names.join(', ')}) VALUES (${placeholders})`;
  for (const row of rows) {
    await client.query(
      insert,
      columns.map((c) => toPgParam(row[c.name] ?? null, c)),
    );
  }
  const diff = async (a: string, b: string) =>
    (
      await client.query(
        `SELECT x::text AS r FROM (SELECT ${names.join(', ')} FROM ${a} EXCEPT ALL SELECT ${names.join(', ')} FROM ${b}) x`,
      )
    ).rows.map((r) => r.r as string);
  // json has no equality operator: compare json columns through their text.
  const missing = await diff(quoteTable(table), temp).catch(() => diffText(client, quoteTable(table), temp, names));
  const extra = await diff(temp, quoteTable(table)).catch(() => diffText(client, temp, quoteTable(table), names));
  await client.query(`DROP TABLE ${temp}`);
  return { missing, extra };
}

async function diffText(client: pg.Client, a: string, b: string, names: string[]): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT r FROM (SELECT (x.*)::text AS r FROM (SELECT ${names.join(', ')} FROM ${a}) x
       EXCEPT ALL SELECT (y.*)::text FROM (SELECT ${names.join(', ')} FROM ${b}) y) d`,
  );
  return rows.map((r) => r.r as string);
}

/** The DuckDB type of each column of a table (`information_schema`'s `data_type`), by column name. */
export async function duckdbColumnTypes(connection: DuckDBConnection, table: string): Promise<Map<string, string>> {
  const rows = await connection.runAndReadAll(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1',
    [table],
  );
  return new Map(rows.getRows() as [string, string][]);
}

/** Waits until `check` returns true, polling; fails with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The CLI, started as a user starts it (`node bin/featureflow.js <args>` in `dir`), with its output collected. */
export function spawnCli(dir: string, args: readonly string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [resolve('bin/featureflow.js'), ...args], {
    cwd: dir,
    env: { ...process.env, DATABASE_URL: pgUrl(), FEATUREFLOW_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  return { child, exited, out: () => stdout, err: () => stderr };
}
