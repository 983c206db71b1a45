import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import type { FeatureflowError } from '../framework/errors.js';
import { entityId } from '../framework/features/entity-key.js';
import type { Prediction, PredictionSink } from '../framework/interfaces/prediction-sink.js';
import { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';
import { DuckDBPredictionSink } from '../stores/duckdb/predictions/duckdb-prediction-sink.js';
import { postgresPredictions } from '../stores/postgres/index.js';
import { freePort } from '../testing/pg-cluster.js';
import { childPrediction, ENTITIES, PER_WRITE } from './fixtures/prediction-sink-plan.js';
import { pgClient, pgUrl, randomName, waitFor } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/prediction-sink-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A prediction of entity `id` at `position`: a 10-class output whose largest value is at `digit`. */
function prediction(id: number, position: bigint, digit = Number(position % 10n)): Prediction {
  return {
    model: 'digits',
    modelVersion: '3',
    key: [id],
    output: Array.from({ length: 10 }, (_, i) => (i === digit ? 0.875 : 0.0125)),
    argmax: digit,
    label: String(digit),
    position,
    commitTime: 1_700_000_000_000_000n + position * 1000n,
    predictedAt: 1_700_000_000_123.5 + Number(position),
    latency: { receivedMs: 1.5, featuresMs: 0.25, scoredMs: 0.125 },
  };
}

/** A DuckDB file held by a change log, as in the serving process. */
async function openLog(): Promise<DuckDBChangeLog> {
  const log = new DuckDBChangeLog(join(mkdtempSync(join(tmpdir(), 'featureflow-test-')), 'featureflow.duckdb'));
  await log.open();
  cleanups.push(() => log.close());
  return log;
}

/** What a sink holds, read back from its table: each entity's newest prediction (digit and position), and how many rows. */
interface Stored {
  readonly newest: Map<string, { digit: number; position: bigint }>;
  readonly rows: number;
}

interface SinkUnderTest {
  readonly sink: PredictionSink;
  read(): Promise<Stored>;
}

/** Each sink, made fresh (its own file or table), with a reader of what it stored. */
const SINKS: Record<string, () => Promise<SinkUnderTest>> = {
  duckdb: async () => {
    const log = await openLog();
    const sink = new DuckDBPredictionSink(() => log.openConnection(), { model: 'digits' });
    cleanups.push(() => sink.close());
    return {
      sink,
      async read() {
        const rows = (
          await log.connection.runAndReadAll(
            `SELECT entity, argmax, position, count(*) OVER () FROM _predictions QUALIFY row_number() OVER (PARTITION BY entity ORDER BY position DESC) = 1`,
          )
        ).getRows() as [string, number, bigint, bigint][];
        return {
          newest: new Map(rows.map(([e, digit, position]) => [e, { digit, position: BigInt(position) }])),
          rows: Number(rows[0]?.[3] ?? 0),
        };
      },
    };
  },
  postgres: async () => {
    const table = randomName('predictions');
    const client = await pgClient();
    cleanups.push(() => client.end());
    const sink = postgresPredictions({ table, connectionString: pgUrl() }).create();
    cleanups.push(() => sink.close());
    return {
      sink,
      async read() {
        const exists = (await client.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [table])).rows[0].ok as boolean;
        if (!exists) return { newest: new Map(), rows: 0 };
        const { rows } = await client.query(`SELECT id::text, argmax, position::text FROM ${table}`);
        return {
          newest: new Map(
            rows.map((r) => [
              entityId([Number(r.id)]),
              { digit: r.argmax as number, position: parseLsn(r.position as string) },
            ]),
          ),
          rows: rows.length,
        };
      },
    };
  },
};

function parseLsn(text: string): bigint {
  const [hi, lo] = text.split('/');
  return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
}

describe.each(Object.keys(SINKS))('the %s prediction sink', (name) => {
  test('writes each entity’s predictions in position order, with the watermark; a replay changes nothing; an older prediction does not win', async () => {
    const { sink, read } = await SINKS[name]!();
    await sink.open();
    expect(await sink.watermark()).toBeNull();

    // One write: entity 1 twice (positions 10 and 30, given out of order), entity 2 once.
    await sink.write([prediction(1, 30n, 3), prediction(2, 20n, 2), prediction(1, 10n, 1)], 30n);
    expect(await sink.watermark()).toBe(30n);
    let stored = await read();
    expect(stored.newest.get('1')).toEqual({ digit: 3, position: 30n });
    expect(stored.newest.get('2')).toEqual({ digit: 2, position: 20n });

    // A replay of the same write, and of part of it: nothing changes.
    const before = stored;
    await sink.write([prediction(1, 30n, 3), prediction(2, 20n, 2), prediction(1, 10n, 1)], 30n);
    await sink.write([prediction(2, 20n, 2)], 20n);
    stored = await read();
    expect(stored).toEqual(before);
    // The watermark never goes back.
    expect(await sink.watermark()).toBe(30n);

    // Newer predictions win; an older one arriving late does not.
    await sink.write([prediction(2, 40n, 4)], 40n);
    await sink.write([prediction(2, 35n, 9)], null);
    stored = await read();
    expect(stored.newest.get('2')).toEqual({ digit: 4, position: 40n });
    expect(await sink.watermark()).toBe(40n);

    // A write with no predictions moves the watermark alone (the changes scored nothing).
    await sink.write([], 50n);
    expect(await sink.watermark()).toBe(50n);
    await sink.close();
    await sink.close();
  });

  test('writes run one at a time in the order called, even when not awaited', async () => {
    const { sink, read } = await SINKS[name]!();
    await sink.open();
    const writes = [];
    for (let p = 1n; p <= 40n; p++) writes.push(sink.write([prediction(Number(p % 5n), p)], p));
    await Promise.all(writes);
    expect(await sink.watermark()).toBe(40n);
    const stored = await read();
    for (let id = 0; id < 5; id++) expect(stored.newest.get(String(id))!.position).toBe(BigInt(36 + ((id + 4) % 5)));
  });
});

describe('the DuckDB prediction sink', () => {
  test('a snapshot read and a change of the same row at the same position (a transaction starting at the snapshot’s very position) are two predictions; replays of either store nothing', async () => {
    const log = await openLog();
    const sink = new DuckDBPredictionSink(() => log.openConnection(), { model: 'digits' });
    cleanups.push(() => sink.close());
    await sink.open();
    const read = prediction(5, 40n, 1);
    const change = { ...prediction(5, 40n, 2), commitTime: read.commitTime + 7n };
    await sink.write([read], 40n);
    await sink.write([change], 41n);
    await sink.write([read, change], 41n);
    const rows = (
      await log.connection.runAndReadAll(
        'SELECT entity, position, argmax, epoch_us(commit_time) FROM _predictions ORDER BY commit_time',
      )
    ).getRowsJS();
    expect(rows).toEqual([
      ['5', 40n, 1, read.commitTime],
      ['5', 40n, 2, change.commitTime],
    ]);
  });

  test('stores every prediction with its typed key, output and latencies, in its own transactions beside the log’s', async () => {
    const log = await openLog();
    const sink = new DuckDBPredictionSink(() => log.openConnection(), { model: 'digits' });
    cleanups.push(() => sink.close());
    await sink.open();
    // The log has a transaction open (a batch in progress) while the sink writes and commits.
    await log.connection.run('BEGIN');
    await log.connection.run('CREATE TABLE log_probe AS SELECT 1 AS x');
    await sink.write(
      [prediction(7, 11n, 7), { ...prediction(0, 12n), key: ['a', 2n], argmax: undefined, label: undefined }],
      12n,
    );
    await log.connection.run('ROLLBACK');
    const rows = (
      await log.connection.runAndReadAll(
        `SELECT model, model_version, entity, key_int, key_text, output, argmax, label, position, epoch_us(commit_time), epoch_us(predicted_at), received_ms, features_ms, scored_ms
           FROM _predictions ORDER BY position`,
      )
    ).getRowsJS();
    expect(rows).toEqual([
      [
        'digits',
        '3',
        '7',
        7n,
        null,
        prediction(7, 11n, 7).output.map(Math.fround),
        7,
        '7',
        11n,
        1_700_000_000_011_000n,
        1_700_000_000_134_500n,
        1.5,
        0.25,
        0.125,
      ],
      [
        'digits',
        '3',
        '"a",2',
        null,
        null,
        prediction(0, 12n).output.map(Math.fround),
        null,
        null,
        12n,
        1_700_000_000_012_000n,
        1_700_000_000_135_500n,
        1.5,
        0.25,
        0.125,
      ],
    ]);
    expect(
      (
        await log.connection.runAndReadAll(`SELECT count(*) FROM duckdb_tables() WHERE table_name = 'log_probe'`)
      ).getRows()[0]![0],
    ).toBe(0n);
    expect(await sink.watermark()).toBe(12n);
  });

  test('SIGKILL mid-stream leaves predictions and watermark together; re-scoring after the watermark (or everything) duplicates nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-test-'));
    const path = join(dir, 'featureflow.duckdb');
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, path], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let writes = 0;
    createInterface({ input: child.stdout! }).on('line', () => writes++);
    await waitFor('the child to make 20 writes', () => {
      if (child.exitCode !== null) throw new Error(`the child exited: ${stderr}`);
      return writes >= 20;
    });
    child.kill('SIGKILL');
    expect(await exited).toBeNull();

    const log = new DuckDBChangeLog(path);
    await log.open();
    cleanups.push(() => log.close());
    const sink = new DuckDBPredictionSink(() => log.openConnection(), { model: 'digits' });
    cleanups.push(() => sink.close());
    await sink.open();
    const watermark = (await sink.watermark())!;
    expect(watermark % BigInt(PER_WRITE)).toBe(0n);
    expect(watermark).toBeGreaterThanOrEqual(BigInt(20 * PER_WRITE));
    const count = async (where = 'true') =>
      Number((await log.connection.runAndReadAll(`SELECT count(*) FROM _predictions WHERE ${where}`)).getRows()[0]![0]);
    // Both or neither: every prediction up to the watermark, none after it.
    expect(await count()).toBe(Number(watermark));
    expect(await count(`position > ${watermark}`)).toBe(0);

    // Re-score what was not written (and, for good measure, the last write again), then a full replay.
    const rescore = async (from: bigint, to: bigint) => {
      for (let p = from; p <= to; p += BigInt(PER_WRITE)) {
        const last = p + BigInt(PER_WRITE) - 1n > to ? to : p + BigInt(PER_WRITE) - 1n;
        const batch = [];
        for (let q = p; q <= last; q++) batch.push(childPrediction(q));
        await sink.write(batch, last);
      }
    };
    const end = watermark + 3n * BigInt(PER_WRITE);
    await rescore(watermark - BigInt(PER_WRITE) + 1n, end);
    await rescore(1n, end);
    expect(await sink.watermark()).toBe(end);
    expect(await count()).toBe(Number(end));
    const repeated = (
      await log.connection.runAndReadAll(
        'SELECT count(*) FROM (SELECT model, entity, position FROM _predictions GROUP BY ALL HAVING count(*) > 1)',
      )
    ).getRows();
    expect(repeated[0]![0]).toBe(0n);
    const entities = (
      await log.connection.runAndReadAll('SELECT count(DISTINCT entity) FROM _predictions')
    ).getRows()[0]![0];
    expect(entities).toBe(BigInt(ENTITIES));
  });
});

describe('the PostgreSQL prediction sink', () => {
  test('a change of a row at the position of its snapshot read (committed after it) replaces the read’s prediction; a replay of the read does not', async () => {
    const { sink, read } = await SINKS.postgres!();
    await sink.open();
    const snapshotRead = prediction(5, 50n, 1);
    const change = { ...prediction(5, 50n, 2), commitTime: snapshotRead.commitTime + 7n };
    await sink.write([snapshotRead], 50n);
    await sink.write([change], 51n);
    await sink.write([snapshotRead], 51n);
    expect((await read()).newest.get('5')).toEqual({ digit: 2, position: 50n });
    // In one write, too: the later commit wins.
    await sink.write(
      [
        { ...change, key: [6] },
        { ...snapshotRead, key: [6] },
      ],
      51n,
    );
    expect((await read()).newest.get('6')).toEqual({ digit: 2, position: 50n });
  });

  test('creates the table in the default layout and writes one round trip per write', async () => {
    const table = randomName('digit_predictions');
    const client = await pgClient();
    cleanups.push(() => client.end());
    const sink = postgresPredictions({ table, connectionString: pgUrl(), keyColumns: { id: 'integer' } }).create();
    cleanups.push(() => sink.close());
    await sink.open();
    await sink.write(
      [prediction(1, 0x1_0000_0010n, 7), { ...prediction(2, 0x1_0000_0011n, 4), label: undefined }],
      0x1_0000_0020n,
    );
    const { rows } = await client.query(
      `SELECT id, model, model_version, label, argmax, probability, output, position::text,
              (extract(epoch FROM commit_time) * 1000000)::int8::text AS commit_time, (extract(epoch FROM predicted_at) * 1000000)::int8::text AS predicted_at,
              received_ms, features_ms, scored_ms
         FROM ${table} ORDER BY id`,
    );
    expect(rows).toEqual([
      {
        id: 1,
        model: 'digits',
        model_version: '3',
        label: '7',
        argmax: 7,
        probability: 0.875,
        // real[] prints each float4 as its shortest decimal: the numbers written.
        output: prediction(1, 1n, 7).output,
        position: '1/10',
        commit_time: String(1_700_000_000_000_000n + 0x1_0000_0010n * 1000n),
        predicted_at: String(1_700_000_000_123_500n + 0x1_0000_0010n * 1000n),
        received_ms: 1.5,
        features_ms: 0.25,
        scored_ms: 0.125,
      },
      expect.objectContaining({ id: 2, label: null, argmax: 4, position: '1/11' }),
    ]);
    const types = await client.query(
      `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [table],
    );
    expect(types.rows.map((r) => `${r.attname} ${r.type}`)).toEqual([
      'id integer',
      'model text',
      'model_version text',
      'label text',
      'argmax integer',
      'probability double precision',
      'output real[]',
      'position pg_lsn',
      'commit_time timestamp with time zone',
      'predicted_at timestamp with time zone',
      'received_ms double precision',
      'features_ms double precision',
      'scored_ms double precision',
    ]);
    const wm = await client.query(
      `SELECT position::text FROM featureflow_prediction_watermarks WHERE table_name = $1`,
      [`public.${table}`],
    );
    expect(wm.rows).toEqual([{ position: '1/20' }]);
  });

  test('writes an existing table as it is: the seed’s digit next to the image, a renamed column, a text key of two columns', async () => {
    const client = await pgClient();
    cleanups.push(() => client.end());
    const images = randomName('images');
    await client.query(`CREATE TABLE ${images} (id int PRIMARY KEY, pixels bytea)`);
    const digits = randomName('digit_predictions');
    await client.query(
      `CREATE TABLE ${digits} (id int PRIMARY KEY, digit int, probability float8, model text, position pg_lsn, predicted_at timestamptz)`,
    );
    const sink = postgresPredictions({
      table: digits,
      connectionString: pgUrl(),
      columns: { argmax: 'digit' },
    }).create();
    cleanups.push(() => sink.close());
    await sink.open();
    await sink.write([prediction(5, 100n, 8)], 100n);
    expect((await client.query(`SELECT id, digit, probability, model, position::text FROM ${digits}`)).rows).toEqual([
      { id: 5, digit: 8, probability: 0.875, model: 'digits', position: '0/64' },
    ]);

    const pairs = randomName('pair_predictions');
    await client.query(
      `CREATE TABLE ${pairs} (region text, sku bigint, label text, position bigint, UNIQUE (sku, region))`,
    );
    const pairSink = postgresPredictions({
      table: pairs,
      connectionString: pgUrl(),
      keyColumns: ['region', 'sku'],
    }).create();
    cleanups.push(() => pairSink.close());
    await pairSink.open();
    await pairSink.write([{ ...prediction(0, 7n, 1), key: ['eu', 9_007_199_254_740_993n] }], 7n);
    await pairSink.write([{ ...prediction(0, 6n, 2), key: ['eu', 9_007_199_254_740_993n] }], 7n);
    expect((await client.query(`SELECT region, sku::text, label, position::text FROM ${pairs}`)).rows).toEqual([
      { region: 'eu', sku: '9007199254740993', label: '1', position: '7' },
    ]);
  });

  test('refuses a table it cannot upsert into, credentials the server refuses, and a server that is not there (retriable); a lost connection is reopened', async () => {
    const client = await pgClient();
    cleanups.push(() => client.end());
    const nokey = randomName('nokey');
    await client.query(`CREATE TABLE ${nokey} (id int, position pg_lsn)`);
    const refuse = async (config: Parameters<typeof postgresPredictions>[0]) => {
      const sink = postgresPredictions(config).create();
      cleanups.push(() => sink.close());
      return sink.open().then(
        () => undefined,
        (error: unknown) => error as FeatureflowError,
      );
    };
    expect(await refuse({ table: nokey, connectionString: pgUrl() })).toMatchObject({
      code: 'FF_PREDICTIONS_TABLE',
      retriable: false,
    });
    const textPosition = randomName('textpos');
    await client.query(`CREATE TABLE ${textPosition} (id int PRIMARY KEY, position text)`);
    const error = await refuse({ table: textPosition, connectionString: pgUrl() });
    expect(error).toMatchObject({ code: 'FF_PREDICTIONS_TABLE' });
    expect(error!.message).toContain('pg_lsn');
    expect(await refuse({ table: `${randomName('nowhere')}.predictions`, connectionString: pgUrl() })).toMatchObject({
      code: 'FF_PREDICTIONS_TABLE',
    });

    const url = new URL(pgUrl());
    url.username = 'nobody_here';
    url.password = 'secret-password';
    const denied = await refuse({ table: randomName('p'), connectionString: url.toString() });
    expect(denied).toMatchObject({ code: 'FF_PREDICTIONS_REFUSED', retriable: false });
    expect(denied!.message).not.toContain('secret-password');
    const closed = new URL(pgUrl());
    closed.port = String(await freePort());
    expect(await refuse({ table: randomName('p'), connectionString: closed.toString() })).toMatchObject({
      code: 'FF_PREDICTIONS_UNREACHABLE',
      retriable: true,
    });

    // The server ends the sink's session: the next write fails retriably or reconnects; then writes go on.
    const table = randomName('predictions');
    const sink = postgresPredictions({ table, connectionString: pgUrl() }).create();
    cleanups.push(() => sink.close());
    await sink.open();
    await sink.write([prediction(1, 1n)], 1n);
    const ended = await client.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'featureflow' AND query LIKE '%${table}%'`,
    );
    expect(ended.rows).toEqual([{ ok: true }]);
    const retry = await sink.write([prediction(1, 2n)], 2n).then(
      () => null,
      (e: unknown) => e as FeatureflowError,
    );
    if (retry) {
      expect(retry).toMatchObject({ code: 'FF_PREDICTIONS_UNREACHABLE', retriable: true });
      await sink.write([prediction(1, 2n)], 2n);
    }
    expect((await client.query(`SELECT position::text FROM ${table}`)).rows).toEqual([{ position: '0/2' }]);
    expect(await sink.watermark()).toBe(2n);
  });

  test('config: every problem listed at once', () => {
    expect(() => postgresPredictions({ table: 'a.b.c', keyColumns: [], columns: { nope: 'x' } as never })).toThrow(
      expect.objectContaining({
        code: 'FF_CONFIG_INVALID',
        message: expect.stringMatching(/table "a\.b\.c"[\s\S]*keyColumns[\s\S]*no field nope/),
      }),
    );
    expect(() => postgresPredictions({ table: 't', columns: { argmax: 'id' } })).toThrow(/column id is named twice/);
    expect(postgresPredictions({ table: 't', connectionString: 'postgres://x' }).config).toMatchObject({
      table: 'public.t',
      keyColumns: [{ name: 'id', type: null }],
      columns: expect.objectContaining({ argmax: 'argmax', position: 'position' }),
    });
  });
});
