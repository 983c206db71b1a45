import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { FeatureflowError, type ErrorCode } from '../framework/errors.js';
import { freePort, startPgCluster, type PgCluster } from '../testing/pg-cluster.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, pgUrl, randomName, testConfig, type TestConfig } from './helpers.js';

// Each misconfiguration fails fast with its own code and a message naming the thing and the fix,
// and leaves nothing behind: no slot, no publication, no change in the log.

let client: pg.Client;
let replica: PgCluster | undefined;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
  await replica?.stop();
});

/** Runs an ingest and returns its rejection, which must be a FeatureflowError. */
async function ingestError(config: TestConfig): Promise<FeatureflowError> {
  const container = await createContainer(config);
  try {
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const error = await engine.run({ untilCaughtUp: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FeatureflowError);
    return error as FeatureflowError;
  } finally {
    await closeContainer(container);
  }
}

/** Nothing was written: no slot and no publication on `server`, no change in the log. */
async function expectNothingWritten(config: TestConfig, server: pg.Client | undefined): Promise<void> {
  if (server) {
    const { rows } = await server.query(
      `SELECT (SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = $1) AS slots,
              (SELECT count(*)::int FROM pg_publication WHERE pubname = $2) AS pubs`,
      [config.source.config.slot, config.source.config.publication],
    );
    expect(rows[0]).toEqual({ slots: 0, pubs: 0 });
  }
  if (existsSync(config.store.config.path)) {
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      const [[changes, checkpoints]] = (
        await db.connection.runAndReadAll(
          'SELECT (SELECT count(*) FROM _changes) + (SELECT count(*) FROM _snapshot_tables), (SELECT count(*) FROM _checkpoint)',
        )
      ).getRows() as [[bigint, bigint]];
      expect([Number(changes), Number(checkpoints)]).toEqual([0, 0]);
    } finally {
      db.close();
    }
  }
}

function expectCoded(error: FeatureflowError, code: ErrorCode, mentions: (string | RegExp)[]): void {
  expect(error.code).toBe(code);
  for (const m of mentions) expect(error.message).toMatch(m);
  // Never the password.
  expect(error.message).not.toMatch(/postgres:postgres@|wrong-password/);
}

describe('bad input is refused with a coded error', () => {
  test('unreachable database: FF_PG_UNREACHABLE', async () => {
    const port = await freePort();
    const config = testConfig(['public.anything'], {}, `postgres://postgres:postgres@127.0.0.1:${port}/postgres`);
    const error = await ingestError(config);
    expectCoded(error, 'FF_PG_UNREACHABLE', [`127.0.0.1:${port}`, /DATABASE_URL|PGHOST/]);
    expect(error.retriable).toBe(true);
    await expectNothingWritten(config, undefined);
  });

  test('wrong password: FF_PG_AUTH_FAILED', async () => {
    const url = new URL(pgUrl());
    url.password = 'wrong-password';
    const table = randomName('auth');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    const config = testConfig([table], {}, url.toString());
    const error = await ingestError(config);
    expectCoded(error, 'FF_PG_AUTH_FAILED', [`127.0.0.1:${url.port}`, /password/, /DATABASE_URL|PGPASSWORD/]);
    expect(error.retriable).toBe(false);
    await expectNothingWritten(config, client);
  });

  test('wal_level=replica: FF_PG_WAL_LEVEL', async () => {
    replica = await startPgCluster({ walLevel: 'replica' });
    const server = await pgClient(replica.url);
    try {
      await server.query('CREATE TABLE walt (id int PRIMARY KEY)');
      const config = testConfig(['walt'], {}, replica.url);
      const error = await ingestError(config);
      expectCoded(error, 'FF_PG_WAL_LEVEL', [
        /wal_level is 'replica'/,
        `127.0.0.1:${replica.port}`,
        /wal_level\s*=\s*logical/,
        /restart/,
      ]);
      await expectNothingWritten(config, server);
    } finally {
      await server.end();
    }
  });

  test('a configured table that does not exist: FF_PG_TABLE_MISSING', async () => {
    const present = randomName('present');
    const missing = randomName('missing');
    await client.query(`CREATE TABLE ${present} (id int PRIMARY KEY)`);
    const config = testConfig([present, missing]);
    const error = await ingestError(config);
    expectCoded(error, 'FF_PG_TABLE_MISSING', [`public.${missing}`, /postgres\(\{ tables \}\)/]);
    await expectNothingWritten(config, client);
  });

  test('a table without a primary key or REPLICA IDENTITY FULL: FF_PG_NO_KEY', async () => {
    const table = randomName('nokey');
    await client.query(`CREATE TABLE ${table} (id int, v text)`);
    const config = testConfig([table]);
    const error = await ingestError(config);
    expectCoded(error, 'FF_PG_NO_KEY', [`public.${table}`, /PRIMARY KEY/, /REPLICA IDENTITY FULL/]);
    await expectNothingWritten(config, client);
  });

  test('a database that does not exist: FF_PG_DATABASE_MISSING, not retried', async () => {
    const url = new URL(pgUrl());
    url.pathname = '/' + randomName('nodb');
    const config = testConfig(['public.anything'], {}, url.toString());
    const error = await ingestError(config);
    expectCoded(error, 'FF_PG_DATABASE_MISSING', [url.pathname.slice(1), /DATABASE_URL/]);
    expect(error.retriable).toBe(false);
    await expectNothingWritten(config, client);
  });

  test('every replication slot taken: FF_PG_SLOTS_EXHAUSTED', async () => {
    const small = await startPgCluster({ settings: { max_replication_slots: 1 } });
    const server = await pgClient(small.url);
    try {
      await server.query("SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')");
      await server.query('CREATE TABLE slott (id int PRIMARY KEY)');
      const config = testConfig(['slott'], {}, small.url);
      const error = await ingestError(config);
      expectCoded(error, 'FF_PG_SLOTS_EXHAUSTED', [
        /all 1 replication slots/,
        config.source.config.slot,
        /max_replication_slots/,
      ]);
      const { rows } = await server.query('SELECT count(*)::int AS n FROM pg_publication');
      expect(rows[0].n).toBe(0);
    } finally {
      await server.end();
      await small.stop();
    }
  });
});
