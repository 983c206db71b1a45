import { Kafka, logLevel, type Consumer } from 'kafkajs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { type DebeziumConnect, startDebeziumConnect } from '../testing/debezium-connect.js';
import { closeContainer, createContainer, debezium, TOKENS } from '../index.js';
import { pgClient, pgUrl, randomName, testConfig, waitFor } from './helpers.js';
import { ingestUntilCaughtUp, startIngest } from './ingest-harness.js';

// The same table and the same changes captured twice: by real Debezium (Kafka Connect standalone
// with its PostgreSQL connector) and by featureflow publishing Debezium envelopes. The records must
// agree field by field, schemas included, except where the README documents a difference.

const brokers = inject('kafkaBrokers');
const kafka = new Kafka({ clientId: 'featureflow-test', brokers, logLevel: logLevel.NOTHING });
const consumers: Consumer[] = [];
let client: pg.Client;
let connect: DebeziumConnect | undefined;

beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  for (const consumer of consumers) await consumer.disconnect();
  await connect?.stop();
  await client?.end();
});

/** A record as read: key and value parsed (int64s beyond 2^53 kept as their digits), headers as text. */
interface Read {
  key: any;
  value: any;
  headers: Record<string, string>;
}

/** JSON.parse that keeps integers of 16 digits or more exact, as strings. */
function parse(text: string): any {
  return JSON.parse(text.replace(/([:[,])(-?\d{16,})(?=[,\]}])/g, '$1"$2"'));
}

const topicExists = async (topic: string) => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
};

/** Reads `topic` from the beginning into an array that fills as records arrive. */
async function read(topic: string): Promise<Read[]> {
  // Subscribing to a topic not created yet fails.
  await waitFor(`topic ${topic}`, () => topicExists(topic), 120_000);
  const records: Read[] = [];
  const consumer = kafka.consumer({ groupId: randomName('group'), maxWaitTimeInMs: 100 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
      records.push({
        key: message.key ? parse(message.key.toString()) : null,
        value: message.value ? parse(message.value.toString()) : null,
        headers,
      });
    },
  });
  return records;
}

/**
 * Every supported type. Left out, as the README documents: 2-D arrays (Debezium writes each inner
 * array as null) and interval arrays (Debezium leaves the column out); infinite dates and
 * timestamps (Debezium writes numbers near the int32/int64 limits).
 */
const COLUMNS = (t: string) => `
  id int8 PRIMARY KEY, i2 int2, i4 int4, i8 int8, num numeric, num_s numeric(30,5), f4 float4, f8 float8,
  b bool, t text, vc varchar(20), ch char(5), by bytea, d date, ts timestamp, ts3 timestamp(3), tstz timestamptz,
  tm time, tm3 time(3), tmtz timetz, iv interval, u uuid, js json, jb jsonb, o oid,
  a_i2 int2[], a_i4 int4[], a_i8 int8[], a_t text[], a_num numeric(10,2)[], a_f4 float4[], a_f8 float8[], a_b bool[],
  a_d date[], a_ts timestamp[], a_tstz timestamptz[], a_tm time[], a_u uuid[], a_by bytea[], a_js jsonb[],
  mood ${t}_mood, a_mood ${t}_mood[], dom ${t}_dom`;

const ROW_1 = `1, -32768, -2147483648, -9223372036854775808, '123.4500', '-1234567890123456789012345.12345',
  1.5, 0.1, true, 'héllo "q" ✓', 'vc', 'ab', '\\x00ff10ab', '2024-02-29', '2024-01-02 03:04:05.123456',
  '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.123456+05:30', '12:34:56.789012', '12:34:56.789',
  '12:34:56.789012+05:30', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"b": 1,  "a": [1, 2.50]}', '{"b": 1,  "a": [1, 2.50]}', 4000000000,
  '{-32768,NULL}', '{1,NULL,3}', '{9007199254740993}', '{"a b",NULL,""}', '{1.50,-2}', '{0.1,NaN}', '{0.1,Infinity}',
  '{true,false}', '{2024-02-29}', '{"2024-01-02 03:04:05.5"}', '{"2024-01-02 03:04:05.5+01"}', '{"00:00:01"}',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"\\\\x41"}', ARRAY['{"k": 1}'::jsonb],
  'happy', '{sad,ok}', 7`;

const NULLS = (id: number) => `${id}${', NULL'.repeat(42)}`;

const ROW_3 = `3, 32767, 2147483647, 9223372036854775807, '100', '0.00000', '-Infinity', 'NaN', false, '', '', '',
  '\\x', '0044-03-15 BC', '0044-03-15 03:04:05 BC', '1999-12-31 23:59:59.999', '1970-01-01 00:00:00+00',
  '24:00:00', '00:00:00', '00:00:00-08', '-1 days +02:00:00.000001', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12',
  'null', '[]', 0, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
  'sad', '{}', -1`;

describe('Debezium envelopes: featureflow against real Debezium', () => {
  test('snapshot, insert, update, delete with tombstone, key change, truncate: records and transactions equal field by field', async () => {
    const table = randomName('dbzcmp');
    const theirs = randomName('dbz');
    const ours = randomName('ff');
    await client.query(`CREATE TYPE ${table}_mood AS ENUM ('sad', 'ok', 'happy')`);
    await client.query(`CREATE DOMAIN ${table}_dom AS int4`);
    await client.query(`CREATE TABLE ${table} (${COLUMNS(table)})`);
    await client.query(`INSERT INTO ${table} VALUES (${ROW_1}), (${NULLS(2)})`);

    connect = await startDebeziumConnect({
      brokers,
      pgUrl: pgUrl(),
      topicPrefix: theirs,
      tables: [`public.${table}`],
      slot: randomName('slot'),
      publication: randomName('pub'),
      pollIntervalMs: 100,
    });
    const container = await createContainer(
      testConfig([`public.${table}`], { publish: debezium({ brokers, topicPrefix: ours, database: 'postgres' }) }),
    );
    const ingest = startIngest(await container.getAsync(TOKENS.IngestEngine));
    try {
      await ingest.until('the snapshot', () => ingest.snapshotDone(), 120_000);
      await waitFor(`topic ${theirs}.public.${table}`, () => topicExists(`${theirs}.public.${table}`), 120_000);
      await waitFor(`topic ${ours}.public.${table}`, () => topicExists(`${ours}.public.${table}`), 120_000);
      const dbz = await read(`${theirs}.public.${table}`);
      const ff = await read(`${ours}.public.${table}`);
      await waitFor('both snapshots', () => dbz.length >= 2 && ff.length >= 2, 120_000);

      await client.query(`INSERT INTO ${table} VALUES (${ROW_3})`);
      await client.query(`UPDATE ${table} SET t = 'x', num = 5, a_i4 = '{}' WHERE id = 1`);
      await client.query(`DELETE FROM ${table} WHERE id = 2`);
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table} (id, t) VALUES (4, 'four')`);
      await client.query(`UPDATE ${table} SET id = 5 WHERE id = 4`);
      await client.query(`UPDATE ${table} SET f8 = 2.5 WHERE id = 3`);
      await client.query('COMMIT');
      await client.query(`TRUNCATE ${table}`);
      // r r, c, u, d + tombstone, (c, d + tombstone, c, u), t
      const expected = 2 + 1 + 1 + 2 + 5 + 1;
      await waitFor('every record on both sides', () => dbz.length >= expected && ff.length >= expected, 120_000);
      const dbzTx = await read(`${theirs}.transaction`);
      const ffTx = await read(`${ours}.transaction`);
      await waitFor('both transaction topics', () => dbzTx.length >= 10 && ffTx.length >= 10, 120_000);

      expect(ff.length).toBe(dbz.length);
      const ops = (records: Read[]) => records.map((r) => r.value?.payload.op ?? 'tombstone');
      expect(ops(ff)).toEqual(['r', 'r', 'c', 'u', 'd', 'tombstone', 'c', 'd', 'tombstone', 'c', 'u', 't']);
      expect(ops(ff)).toEqual(ops(dbz));
      for (const [i, theirRecord] of dbz.entries()) {
        const ourRecord = ff[i]!;
        const what = `record ${i} (${ops(dbz)[i]})`;
        // Keys: schema and payload.
        expect.soft(unprefixed(ourRecord.key, ours), what).toEqual(unprefixed(theirRecord.key, theirs));
        // Headers of key changes; the __debezium.context.* headers name each connector.
        for (const h of ['__debezium.newkey', '__debezium.oldkey'])
          expect.soft(ourRecord.headers[h], `${what} header ${h}`).toEqual(theirRecord.headers[h]);
        expect(ourRecord.headers['__debezium.context.connectorLogicalName']).toBe(ours);
        if (theirRecord.value === null) {
          expect(ourRecord.value, what).toBeNull();
          continue;
        }
        const theirValue = comparable(theirRecord.value, theirs);
        const ourValue = comparable(ourRecord.value, ours);
        const snapshot = theirRecord.value.payload.op === 'r';
        expect.soft(ourValue.schema, `${what} schema`).toEqual(theirValue.schema);
        const [p, q] = [ourValue.payload, theirValue.payload];
        expect.soft(p.before, `${what} before`).toEqual(q.before);
        expect.soft(p.after, `${what} after`).toEqual(q.after);
        expect(p.op).toBe(q.op);
        expect.soft(p.transaction, `${what} transaction`).toEqual(q.transaction);
        const source = (s: any) => {
          const { version: _v, name: _n, sequence, ...rest } = s;
          if (!snapshot) return { ...rest, lsnInSequence: JSON.parse(sequence)[1] };
          // A snapshot is taken by each at its own point: position, transaction and time differ.
          const { lsn: _l, txId: _t, ts_ms: _ms, ts_us: _us, ts_ns: _ns, ...same } = rest;
          return same;
        };
        expect.soft(source(p.source), `${what} source`).toEqual(source(q.source));
      }

      // Transaction metadata: the same BEGIN and END records (an END's id ends in the commit's LSN
      // with featureflow, the commit's end LSN with Debezium).
      const tx = (records: Read[]) =>
        records.map((r) => {
          const { id, ...rest } = r.value.payload;
          return rest.status === 'END' ? { ...rest, txId: id.split(':')[0] } : { ...rest, id };
        });
      expect.soft(tx(ffTx)).toEqual(tx(dbzTx));
      expect.soft(ffTx.map((r) => r.value.schema)).toEqual(dbzTx.map((r) => r.value.schema));
      expect.soft(ffTx.map((r) => r.key.schema)).toEqual(dbzTx.map((r) => r.key.schema));
    } finally {
      await ingest.stop();
      await closeContainer(container);
    }
  });
});

describe('Debezium envelopes: publishing from the change log', () => {
  test('changes logged before publishing was configured are published from the log, once; without schemas the records are bare payloads', async () => {
    const table = randomName('dbzlog');
    const prefix = randomName('ff');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')`);
    // A second table: every table's snapshot is published (their reads share one position).
    await client.query(`CREATE TABLE ${table}_b (k text PRIMARY KEY)`);
    await client.query(`INSERT INTO ${table}_b VALUES ('b')`);
    const config = testConfig([`public.${table}`, `public.${table}_b`]);
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (3, 'three')`);
    await client.query(`UPDATE ${table} SET v = 'ONE' WHERE id = 1`);
    await client.query(`DELETE FROM ${table} WHERE id = 2`);
    await ingestUntilCaughtUp(config);

    // The same change log, now publishing: everything it holds goes out, in commit order.
    const publishing = Object.freeze({
      ...config,
      publish: debezium({ brokers, topicPrefix: prefix, schemas: false, database: 'postgres' }),
    });
    await ingestUntilCaughtUp(publishing);
    const data = await read(`${prefix}.public.${table}`);
    await waitFor('the logged changes', () => data.length >= 6, 60_000);
    const other = await read(`${prefix}.public.${table}_b`);
    await waitFor("the other table's snapshot", () => other.length >= 1, 60_000);
    expect(other.map((r) => [r.key, r.value.op, r.value.after])).toEqual([[{ k: 'b' }, 'r', { k: 'b' }]]);
    expect(data.map((r) => r.key)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 1 }, { id: 2 }, { id: 2 }]);
    expect(data.map((r) => r.value?.op ?? 'tombstone')).toEqual(['r', 'r', 'c', 'u', 'd', 'tombstone']);
    expect(data[3]!.value).toMatchObject({ before: null, after: { id: 1, v: 'ONE' } });
    expect(data[4]!.value).toMatchObject({ before: { id: 2, v: null }, after: null });
    expect(data[0]!.value.source).toMatchObject({ snapshot: 'first', db: 'postgres', table, txId: null });
    expect(data[1]!.value.source.snapshot).toBe('last_in_data_collection');
    expect(other[0]!.value.source.snapshot).toBe('last');
    const tx = await read(`${prefix}.transaction`);
    await waitFor('BEGIN and END of the 3 transactions', () => tx.length >= 6, 60_000);
    expect(tx.map((r) => r.value.status)).toEqual(['BEGIN', 'END', 'BEGIN', 'END', 'BEGIN', 'END']);
    expect(tx.map((r) => r.value.id.split(':')[0])).toEqual(
      [2, 2, 3, 3, 4, 4].map((i) => String(data[i]!.value.source.txId)),
    );

    // Published once: a further run sends only what is new.
    await client.query(`INSERT INTO ${table} VALUES (4, 'four')`);
    await ingestUntilCaughtUp(publishing);
    await waitFor('the new insert', () => data.length >= 7, 60_000);
    await ingestUntilCaughtUp(publishing);
    await client.query(`INSERT INTO ${table} VALUES (5, 'five')`);
    await ingestUntilCaughtUp(publishing);
    await waitFor('the last insert', () => data.length >= 8, 60_000);
    expect(data.slice(6).map((r) => [r.key, r.value.op])).toEqual([
      [{ id: 4 }, 'c'],
      [{ id: 5 }, 'c'],
    ]);

    // Regression: publishing from a log's first run sent only the first table's snapshot (the
    // second's reads share its position, which counted as sent).
    const fresh = randomName('ff');
    await ingestUntilCaughtUp(
      testConfig([`public.${table}`, `public.${table}_b`], {
        publish: debezium({ brokers, topicPrefix: fresh, schemas: false }),
      }),
    );
    const second = await read(`${fresh}.public.${table}_b`);
    await waitFor("the second table's snapshot", () => second.length >= 1, 60_000);
    expect(second.map((r) => r.value.op)).toEqual(['r']);
  });
});

describe('Debezium envelopes: large transactions', () => {
  test('a transaction whose records exceed the broker’s request limit (1 MiB by default) is published whole, in order', async () => {
    const table = randomName('dbzbig');
    const prefix = randomName('ff');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const config = testConfig([`public.${table}`], { publish: debezium({ brokers, topicPrefix: prefix }) });
    await ingestUntilCaughtUp(config);
    // 1000 rows of 3 kB: about 3 MB of records with schemas, in one transaction.
    await client.query(`INSERT INTO ${table} SELECT g, repeat(md5(g::text), 94) FROM generate_series(1, 1000) g`);
    await ingestUntilCaughtUp(config);
    const data = await read(`${prefix}.public.${table}`);
    await waitFor('the 1000 inserts', () => data.length >= 1000, 60_000);
    expect(data.map((r) => r.key.payload.id)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(data.every((r) => r.value.payload.op === 'c' && r.value.payload.after.v.length === 3008)).toBe(true);
  });

  test('while following, transactions longer than a batch and single-row ones are each published whole and once, in commit order', async () => {
    // A commit of whole transactions is sent from memory; one that ends a transaction begun in an
    // earlier commit is read back from the log. Batches of 4 changes make both happen.
    const table = randomName('dbzmix');
    const prefix = randomName('ff');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const config = testConfig([`public.${table}`], {
      publish: debezium({ brokers, topicPrefix: prefix, schemas: false }),
      ingest: { batchSize: 4 },
    });
    const container = await createContainer(config);
    const ingest = startIngest(await container.getAsync(TOKENS.IngestEngine));
    const expected: number[] = [];
    const sizes: number[] = [];
    try {
      await ingest.until('the snapshot', () => ingest.snapshotDone(), 120_000);
      let id = 0;
      for (const size of [1, 10, 1, 1, 7, 2, 1, 13, 1]) {
        const ids = Array.from({ length: size }, () => ++id);
        await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM unnest($1::int[]) g`, [ids]);
        expected.push(...ids);
        sizes.push(size);
      }
      await ingest.caughtUp(client);
      const data = await read(`${prefix}.public.${table}`);
      await waitFor('every insert', () => data.length >= expected.length, 60_000);
      const tx = await read(`${prefix}.transaction`);
      await waitFor('BEGIN and END of every transaction', () => tx.length >= 2 * sizes.length, 60_000);
      // Later commits would be published by now too: nothing twice.
      await new Promise((r) => setTimeout(r, 500));
      expect(data.map((r) => r.key.id)).toEqual(expected);
      expect(data.every((r) => r.value.op === 'c')).toBe(true);
      expect(tx.filter((r) => r.value.status === 'END').map((r) => r.value.event_count)).toEqual(sizes);
    } finally {
      await ingest.stop();
      await closeContainer(container);
    }
    // A run after the stop sends nothing again (what was sent from memory was recorded).
    await client.query(`INSERT INTO ${table} VALUES (1000, 'last')`);
    await ingestUntilCaughtUp(config);
    const data = await read(`${prefix}.public.${table}`);
    await waitFor('the last insert', () => data.length >= expected.length + 1, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(data.map((r) => r.key.id)).toEqual([...expected, 1000]);
  });
});

/**
 * A value record with the documented differences taken out: the processing time (`ts_ms`, `ts_us`,
 * `ts_ns` of the envelope), the connector's name and version; the topic prefix in schema names.
 */
function comparable(value: any, prefix: string): any {
  const { ts_ms: _ms, ts_us: _us, ts_ns: _ns, ...payload } = value.payload;
  // Debezium lists an enum's labels in its schema (parameters.allowed); featureflow does not know them.
  const schema = JSON.parse(JSON.stringify(unprefixed(value.schema, prefix)), (key, v) =>
    key === 'parameters' && v && typeof v.allowed === 'string' && Object.keys(v).length === 1 ? undefined : v,
  );
  return { schema, payload };
}

/** `value` with the topic prefix in schema names replaced by `<prefix>`. */
function unprefixed(value: any, prefix: string): any {
  return value === null ? null : JSON.parse(JSON.stringify(value).replaceAll(`"${prefix}.`, '"<prefix>.'));
}
