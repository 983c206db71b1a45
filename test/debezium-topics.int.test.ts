import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type IHeaders, Kafka, logLevel } from 'kafkajs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { resolveConfig, type IngestConfig, type ResolvedConfig } from '../framework/config.js';
import { entity, featureView, float64, int32, text, timestamp } from '../framework/features/index.js';
import { closeContainer, createContainer, DEFAULTS, TOKENS } from '../index.js';
import { type DebeziumTopicsConfig, debeziumTopics } from '../sources/kafka/index.js';
import { duckdb } from '../stores/duckdb/index.js';
import {
  type DebeziumConnect,
  type DebeziumConnectOptions,
  startDebeziumConnect,
} from '../testing/debezium-connect.js';
import { rowsOf } from './features-helpers.js';
import { diffAgainstPostgres, pgClient, pgUrl, randomName, readChangeLog, replay, waitFor } from './helpers.js';
import { latestSchema } from './ingest-harness.js';

// Real Debezium (Kafka Connect + the PostgreSQL connector) captures a table of the test cluster into
// the run's Kafka broker while writers run; featureflow reads Debezium's topics with the
// debeziumTopics source. PostgreSQL is the oracle for the change log's latest rows and the feature
// view; the topic itself is the oracle for "nothing doubled".

const brokers = inject('kafkaBrokers');
const kafka = new Kafka({ clientId: 'featureflow-test', brokers, logLevel: logLevel.NOTHING });
let client: pg.Client;
const connects: DebeziumConnect[] = [];

beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  for (const c of connects) await c.stop();
  await client?.end();
});

/** The types Debezium carries exactly through JsonConverter with schemas (see README for the rest). */
const COLUMNS = `
  id int8 PRIMARY KEY,
  i2 int2, i4 int4, i8 int8, num numeric, num_s numeric(30,5), f4 float4, f8 float8, b bool,
  t text, vc varchar(20), by bytea, d date, ts timestamp, tstz timestamptz, tm time, iv interval,
  u uuid, js json, jb jsonb, a_i4 int4[], a_i8 int8[], a_t text[], mood %ENUM%`;

/** A row's values (SQL expressions of $1, the id, and $2, a variant number). */
const VALUES = `$1, ($2 % 30000)::int2, $2 * 1000, 9007199254740993 + $2, ($2 || '.000123456789012345678901')::numeric,
  -1234567890123456789012345.12345 + $2, 1.1 * $2, 0.1 * $2, $2 % 2 = 0,
  repeat('toast' || $2, 1000), 'vc' || $2, decode(repeat('00ff', $2 % 5 + 1), 'hex'), date '2024-02-29' + $2,
  timestamp '2024-01-02 03:04:05.123456' + $2 * interval '1 second', timestamptz '1970-01-01 00:00:00.000001+00' + $2 * interval '1 day',
  time '12:34:56.789012' + $2 * interval '1 millisecond', $2 * interval '1 hour 2 minutes 3.5 seconds',
  md5($2::text)::uuid, ('{"b": 1,  "a": [1, 2.50, "x"], "n": ' || $2 || '}')::json, ('{"k": ' || $2 || '}')::jsonb,
  ARRAY[$2, NULL, -2147483648]::int4[], ARRAY[-9223372036854775808, $2]::int8[], ARRAY['a b', 'c"d', NULL, $2::text],
  (CASE WHEN $2 % 2 = 0 THEN 'happy' ELSE 'sad' END)::%ENUM%`;

const item = entity({ name: 'item', keys: ['id'] });

function config(
  table: string,
  prefix: string,
  path: string,
  group: string,
  source: Partial<DebeziumTopicsConfig> = { schemas: 'with' },
  ingest: IngestConfig = {},
): ResolvedConfig {
  return resolveConfig(
    {
      ingest,
      logLevel: process.env.FEATUREFLOW_TEST_LOG ?? 'silent',
      source: debeziumTopics({ brokers, topicPrefix: prefix, tables: [`public.${table}`], group, ...source }),
      store: duckdb({ path }),
      features: {
        views: [
          featureView({
            name: 'items',
            version: 1,
            entity: item,
            source: `public.${table}`,
            features: { i4: int32, f8: float64, vc: text, ts: timestamp },
            transform: (row) => ({
              i4: row.i4 as number | null,
              f8: row.f8 as number | null,
              vc: row.vc as string | null,
              ts: row.ts as string | null,
            }),
          }),
        ],
      },
    },
    DEFAULTS,
  );
}

/** One `ingest --until-caught-up` of the Debezium topics (stopped after `stopAfter` batches); the view's latest rows after it. */
async function ingest(cfg: ResolvedConfig, stopAfter?: number): Promise<Record<string, unknown>[]> {
  const container = await createContainer(cfg);
  const controller = new AbortController();
  let batches = 0;
  try {
    await (await container.getAsync(TOKENS.IngestEngine)).run({
      untilCaughtUp: true,
      signal: controller.signal,
      onBatch: (b) => {
        if (!b.snapshot && ++batches === stopAfter) controller.abort();
      },
    });
    return rowsOf(await (await container.getAsync(TOKENS.OfflineStore)).latest('items'));
  } finally {
    await closeContainer(container);
  }
}

/** The change log's latest rows against the table, and the view against the table. */
async function compare(table: string, path: string, view: Record<string, unknown>[]) {
  const { changes, schemas } = await readChangeLog(path);
  const state = replay(changes, `public.${table}`);
  const diff = await diffAgainstPostgres(
    client,
    `public.${table}`,
    state.values(),
    latestSchema(schemas, `public.${table}`).columns,
  );
  const { rows } = await client.query(
    `SELECT id, i4, f8, vc, (extract(epoch FROM ts) * 1000)::float8 AS ms FROM ${table} ORDER BY id`,
  );
  const expected = rows.map((r) => [BigInt(r.id), r.i4, r.f8, r.vc, r.ms]);
  const actual = view
    .map((r) => [BigInt(r.id as bigint), r.i4, r.f8, r.vc, r.ts])
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  return { diff, changes, viewEqual: JSON.stringify(actual, big) === JSON.stringify(expected, big) };
}

/** Debezium capturing `table` into topics `<prefix>.public.<table>`, with a slot and publication of its own. */
async function startConnect(prefix: string, table: string, options: Partial<DebeziumConnectOptions>): Promise<void> {
  const connect = await startDebeziumConnect({
    brokers,
    pgUrl: pgUrl(),
    topicPrefix: prefix,
    tables: [`public.${table}`],
    slot: randomName('slot'),
    publication: randomName('pub'),
    ...options,
  });
  connects.push(connect);
}

/** No stored row holds Debezium's unchanged-TOAST placeholder: every one was filled. */
function expectNoPlaceholder(changes: readonly { after: unknown }[]): void {
  expect(
    JSON.stringify(
      changes.map((c) => c.after),
      big,
    ),
  ).not.toContain('__debezium_unavailable_value');
}

function big(_k: string, v: unknown) {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** Ingests again until the log and the view equal the table (Debezium lags behind the commits). */
async function ingestUntilEqual(cfg: ResolvedConfig, table: string, path: string, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await compare(table, path, await ingest(cfg));
    if (
      (result.diff.missing.length === 0 && result.diff.extra.length === 0 && result.viewEqual) ||
      Date.now() > deadline
    )
      return result;
    await new Promise((r) => setTimeout(r, 500));
  }
}

interface Message {
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
}

/** True once `topic` exists and holds a record. */
async function topicHolds(topic: string): Promise<boolean> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return false;
    return (await admin.fetchTopicOffsets(topic)).some((p) => Number(p.high) > 0);
  } finally {
    await admin.disconnect();
  }
}

/** Every record of `topic` (key and value bytes), from the beginning to its current end. */
async function readTopic(topic: string): Promise<Message[]> {
  const admin = kafka.admin();
  await admin.connect();
  const high = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  await admin.disconnect();
  const records: Message[] = [];
  const consumer = kafka.consumer({ groupId: randomName('read'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      records.push({ key: message.key, value: message.value, headers: message.headers ?? {} });
    },
  });
  const deadline = Date.now() + 60_000;
  while (records.length < high && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  return records;
}

describe('the debeziumTopics source reads real Debezium topics', () => {
  test('snapshot and stream while writers run (every type Debezium keeps exact, unchanged TOAST, deletes, a key change, a truncate), Debezium duplicates dropped; equal to PostgreSQL across restarts, nothing doubled', async () => {
    const table = randomName('dbzin');
    const mood = randomName('mood');
    const prefix = randomName('dbzin');
    const topic = `${prefix}.public.${table}`;
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-dbzin-')), 'featureflow.duckdb');
    await client.query(`CREATE TYPE ${mood} AS ENUM ('sad', 'happy')`);
    await client.query(`CREATE TABLE ${table} (${COLUMNS.replaceAll('%ENUM%', mood)})`);
    // Out of line, uncompressed: an update that leaves t alone sends Debezium's placeholder for it.
    await client.query(`ALTER TABLE ${table} ALTER COLUMN t SET STORAGE EXTERNAL`);
    const insert = `INSERT INTO ${table} VALUES (${VALUES.replaceAll('%ENUM%', mood)})`;
    for (let id = 1; id <= 20; id++) await client.query(insert, [id, id]);
    await client.query(`INSERT INTO ${table} (id) VALUES (21)`);

    await startConnect(prefix, table, { pollIntervalMs: 100 });
    // Writers run while Debezium snapshots: inserts, updates (some leaving the TOASTed t alone), deletes.
    for (let n = 0; n < 40; n++) {
      const id = 1 + (n % 25);
      if (n % 5 === 0) await client.query(insert, [100 + n, n]);
      else if (n % 5 === 1) await client.query(`UPDATE ${table} SET i4 = i4 + 1, vc = 'u${n}' WHERE id = $1`, [id]);
      else if (n % 5 === 2)
        await client.query(`UPDATE ${table} SET t = repeat('new' || $2::text, 900) WHERE id = $1`, [id, n]);
      else if (n % 5 === 3) await client.query(`DELETE FROM ${table} WHERE id = $1`, [id + 5]);
      else {
        await client.query('BEGIN');
        await client.query(`UPDATE ${table} SET f8 = $2, ts = now()::timestamp WHERE id = $1`, [id, n / 7]);
        await client.query(`INSERT INTO ${table} (id, i4) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, [200 + n, n]);
        await client.query('COMMIT');
      }
    }
    const group = randomName('group');
    const cfg = config(table, prefix, path, group);
    // The source refuses a topic Debezium has not written yet (FF_KAFKA_TOPIC_EMPTY): its snapshot first.
    await waitFor('Debezium to write the snapshot to its topic', () => topicHolds(topic), 120_000);
    const first = await ingestUntilEqual(cfg, table, path);
    expect(first.diff).toEqual({ missing: [], extra: [] });
    expect(first.viewEqual).toBe(true);
    // The updates that left t alone arrived with the placeholder and were filled from the row's previous version.
    expect(first.changes.some((c) => c.op === 'u')).toBe(true);
    expectNoPlaceholder(first.changes);

    // Debezium's at-least-once: records sent again after a connector restart (copies at new offsets).
    const records = await readTopic(topic);
    const streamed = records.filter((r) => r.value && JSON.parse(r.value.toString()).payload.op === 'u');
    const copies = streamed.slice(0, 5);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: copies.map((r) => ({ key: r.key, value: r.value })) });
    await producer.disconnect();

    // A key change (Debezium: delete, tombstone, create), a truncate, rows after it, a TOAST-unchanged update.
    await client.query(`UPDATE ${table} SET id = id + 1000 WHERE id = 2`);
    await client.query(`TRUNCATE ${table}`);
    for (let id = 300; id < 310; id++) await client.query(insert, [id, id]);
    await client.query(`UPDATE ${table} SET i2 = 7 WHERE id = 301`);
    await client.query(`UPDATE ${table} SET id = 2000 WHERE id = 302`);
    const second = await ingestUntilEqual(cfg, table, path);
    expect(second.diff).toEqual({ missing: [], extra: [] });
    expect(second.viewEqual).toBe(true);
    expect(second.changes.filter((c) => c.op === 't')).toHaveLength(1);
    expectNoPlaceholder(second.changes);

    // Nothing doubled: each change record of the topic is in the log once, the copies not at all.
    const all = await readTopic(topic);
    // (A key change's delete is not a change of its own: the create that follows moves the row.)
    const changeRecords = all.filter((r) => r.value && JSON.parse(r.value.toString()).payload.op !== 'm');
    const keyChanges = all.filter((r) => r.value && r.headers?.['__debezium.newkey'] !== undefined);
    expect(keyChanges).toHaveLength(2);
    expect(second.changes).toHaveLength(changeRecords.length - copies.length - keyChanges.length);
  }, 600_000);

  test('without schemas: stopped mid-stream and started again, no change lost or doubled', async () => {
    const table = randomName('dbzin');
    const prefix = randomName('dbzin');
    const topic = `${prefix}.public.${table}`;
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-dbzin-')), 'featureflow.duckdb');
    await client.query(
      `CREATE TABLE ${table} (id int8 PRIMARY KEY, i4 int4, f8 float8, vc text, ts timestamp, big int8)`,
    );
    for (let id = 1; id <= 10; id++)
      await client.query(
        `INSERT INTO ${table} VALUES ($1::int8, $1::int4, $1::int4 / 3.0, 'r' || $1::text, '2024-01-01 00:00:00.5', 9007199254740993)`,
        [id],
      );
    await startConnect(prefix, table, {
      pollIntervalMs: 50,
      schemasEnable: false,
      // Small producer batches: the stream arrives in many Kafka batches, so the stop falls mid-stream.
      worker: { 'producer.batch.size': 512 },
    });
    for (let n = 0; n < 120; n++) {
      const id = 1 + (n % 30);
      await client.query(
        `INSERT INTO ${table} VALUES ($1::int8, $2::int4, $2::int4 / 7.0, 'v' || $2::text, timestamp '2024-01-01' + $2::int4 * interval '1 ms', 9007199254740993 + $2::int8)
         ON CONFLICT (id) DO UPDATE SET i4 = excluded.i4, f8 = excluded.f8, vc = excluded.vc, big = excluded.big`,
        [id, n],
      );
      if (n % 9 === 8) await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
    }
    // Without schemas, ts (MicroTimestamp µs) and i4 would read as int8: their types are declared.
    const cfg = config(
      table,
      prefix,
      path,
      randomName('group'),
      {
        schemas: 'without',
        // Small fetches: the stream arrives in many batches, so the stop below falls mid-stream.
        maxBatchBytes: 2048,
        columnTypes: { [`public.${table}`]: { ts: 'timestamp', i4: 'int4' } },
      },
      // Batches committing while later ones are served are bounded by twice this: the stop lands mid-stream.
      { batchSize: 8 },
    );
    // Wait for Debezium to have written every change (the last one is the 120th insert or update).
    const admin = kafka.admin();
    await admin.connect();
    const deadline = Date.now() + 120_000;
    const expected = 10 + 120 + 2 * Math.floor(120 / 9); // reads, upserts, deletes and their tombstones
    while (Date.now() < deadline) {
      const total = (await admin.fetchTopicOffsets(topic).catch(() => [])).reduce((n, p) => n + Number(p.high), 0);
      if (total >= expected) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await admin.disconnect();

    await ingest(cfg, 2);
    const partial = await readChangeLog(path);
    expect(partial.changes.length).toBeGreaterThan(0);
    expect(partial.changes.length).toBeLessThan(expected - Math.floor(120 / 9));
    const result = await ingestUntilEqual(cfg, table, path);
    expect(result.diff).toEqual({ missing: [], extra: [] });
    expect(result.viewEqual).toBe(true);
    const all = await readTopic(topic);
    expect(result.changes).toHaveLength(all.filter((r) => r.value).length);
    // int8 beyond 2^53 exact without schemas too.
    expect(result.changes.at(-1)?.after?.big ?? 9007199254740993n).toBeTypeOf('bigint');
  }, 600_000);
});
