import { Kafka, logLevel, type Consumer } from 'kafkajs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { type DebeziumConnect, startDebeziumConnect } from '../testing/debezium-connect.js';
import { pgClient, pgUrl, randomName, waitFor } from './helpers.js';

// Real Debezium (Kafka Connect standalone + the PostgreSQL connector, from Maven Central's jars)
// captures a table of the test cluster into the run's Kafka broker. This proves the harness and pins
// the envelope facts a Debezium-topic source must handle; comparing envelopes with featureflow's own
// change log is later work.

const kafka = new Kafka({ clientId: 'featureflow-test', brokers: inject('kafkaBrokers'), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
const consumers: Consumer[] = [];
let client: pg.Client;
let connect: DebeziumConnect | undefined;

beforeAll(async () => {
  client = await pgClient();
  await admin.connect();
});
afterAll(async () => {
  for (const consumer of consumers) await consumer.disconnect();
  await connect?.stop();
  await admin.disconnect();
  await client?.end();
});

/** A Kafka record as read: key and value parsed from JSON (null for a tombstone), headers as text. */
interface Record {
  topic: string;
  offset: string;
  key: any;
  value: any;
  headers: { [name: string]: string };
}

/** Reads `topics` from the beginning into an array that fills as records arrive. */
async function read(topics: string[]): Promise<Record[]> {
  const records: Record[] = [];
  const consumer = kafka.consumer({ groupId: randomName('group'), maxWaitTimeInMs: 100 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      const headers: { [name: string]: string } = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
      records.push({
        topic,
        offset: message.offset,
        key: message.key ? JSON.parse(message.key.toString()) : null,
        value: message.value ? JSON.parse(message.value.toString()) : null,
        headers,
      });
    },
  });
  return records;
}

async function topicExists(topic: string): Promise<boolean> {
  return (await admin.listTopics()).includes(topic);
}

/** The server's current WAL position as a number of bytes. */
async function walPosition(): Promise<number> {
  return Number((await client.query(`SELECT (pg_current_wal_lsn() - '0/0')::text AS l`)).rows[0].l);
}

describe('real Debezium into the real broker', () => {
  test('snapshot rows, then inserts, updates, deletes with tombstones and a truncate, LSNs and transaction metadata', async () => {
    const table = randomName('dbz');
    const prefix = randomName('dbz');
    const dataTopic = `${prefix}.public.${table}`;
    const txTopic = `${prefix}.transaction`;
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL, note text DEFAULT 'the default')`,
    );
    // FULL: updates and deletes carry the whole old row in `before`.
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${table} VALUES (1, 'one', 'n1'), (2, 'two', NULL), (3, 'three', 'n3')`);
    const beforeSnapshot = await walPosition();

    connect = await startDebeziumConnect({
      brokers: inject('kafkaBrokers'),
      pgUrl: pgUrl(),
      topicPrefix: prefix,
      tables: [`public.${table}`],
      slot: randomName('slot'),
      publication: randomName('pub'),
      pollIntervalMs: 100,
    });
    expect((await connect.status()).connector.state).toBe('RUNNING');

    await waitFor(`topic ${dataTopic}`, () => topicExists(dataTopic), 60_000);
    const data = await read([dataTopic]);
    await waitFor('the 3 snapshot records', () => data.length >= 3, 60_000);

    // Snapshot: op r, no before, source.snapshot a string marking the first and last record.
    const snapshot = data.slice(0, 3).map((r) => r.value.payload);
    expect(snapshot.map((p) => p.op)).toEqual(['r', 'r', 'r']);
    expect(snapshot.map((p) => p.after)).toEqual([
      { id: 1, name: 'one', note: 'n1' },
      // SQL NULL stays null with replace.null.with.default=false (true would give 'the default').
      { id: 2, name: 'two', note: null },
      { id: 3, name: 'three', note: 'n3' },
    ]);
    expect(snapshot.every((p) => p.before === null)).toBe(true);
    expect(snapshot[0].source.snapshot).toBe('first');
    expect(snapshot[2].source.snapshot).toBe('last');
    expect(snapshot[0].source).toMatchObject({
      connector: 'postgresql',
      name: prefix,
      schema: 'public',
      table,
      db: 'postgres',
    });
    expect(snapshot[0].source.lsn).toBeGreaterThanOrEqual(beforeSnapshot);
    // Key: the primary-key struct; with schemas.enable the record is {schema, payload}.
    expect(data[0]!.key).toMatchObject({ payload: { id: 1 }, schema: { type: 'struct' } });
    expect(data[0]!.value.schema.name).toBe(`${prefix}.public.${table}.Envelope`);

    // Streaming, one transaction each, then two changes in one transaction.
    await client.query(`INSERT INTO ${table} VALUES (4, 'four', 'n4')`);
    await client.query(`UPDATE ${table} SET name = 'ONE' WHERE id = 1`);
    await client.query(`DELETE FROM ${table} WHERE id = 2`);
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (5, 'five', NULL)`);
    await client.query(`UPDATE ${table} SET note = 'N3' WHERE id = 3`);
    await client.query('COMMIT');
    const afterChanges = await walPosition();
    // c, u, d + tombstone, c, u.
    await waitFor('the 6 streamed records', () => data.length >= 9, 60_000);
    const streamed = data.slice(3);
    expect(streamed.map((r) => r.value?.payload.op ?? 'tombstone')).toEqual(['c', 'u', 'd', 'tombstone', 'c', 'u']);
    const [insert, update, del, tombstone, insert5, update3] = streamed.map((r) => r.value?.payload);
    expect(insert).toMatchObject({ before: null, after: { id: 4, name: 'four', note: 'n4' } });
    expect(update).toMatchObject({
      before: { id: 1, name: 'one', note: 'n1' },
      after: { id: 1, name: 'ONE', note: 'n1' },
    });
    expect(del).toMatchObject({ before: { id: 2, name: 'two', note: null }, after: null });
    expect(tombstone).toBeUndefined();
    expect(streamed[3]!.key.payload).toEqual({ id: 2 });
    expect(insert5.after).toEqual({ id: 5, name: 'five', note: null });
    expect(update3.after).toEqual({ id: 3, name: 'three', note: 'N3' });
    for (const p of [insert, update, del, insert5, update3]) {
      // Streamed changes leave source.snapshot unset: the schema's default "false" is written only
      // with replace.null.with.default=true, so with the setting we need a consumer reads null as false.
      expect(p.source.snapshot).toBeNull();
      expect(typeof p.source.txId).toBe('number');
    }
    // source.lsn: the change's WAL position, increasing in commit order, within what the server wrote.
    const lsns = [insert, update, del, insert5, update3].map((p) => p.source.lsn as number);
    expect(lsns).toEqual([...lsns].sort((a, b) => a - b));
    expect(lsns[0]).toBeGreaterThan(snapshot[0].source.lsn);
    expect(lsns.at(-1)).toBeLessThanOrEqual(afterChanges);
    // skipped.operations=none: a truncate is a record too (op t, no key, no before or after).
    await client.query(`TRUNCATE ${table}`);
    await waitFor('the truncate record', () => data.length >= 10, 60_000);
    expect(data[9]!.key).toBeNull();
    expect(data[9]!.value.payload).toMatchObject({ op: 't', before: null, after: null });

    // Transaction ids are "<txId>:<lsn>" with the LSN of the event at hand, so the two changes of the
    // last transaction carry different ids: only the txId part (and source.txId) names the transaction.
    expect(insert5.source.txId).toBe(update3.source.txId);
    expect(insert5.transaction).toEqual({
      id: `${insert5.source.txId}:${insert5.source.lsn}`,
      total_order: 1,
      data_collection_order: 1,
    });
    expect(update3.transaction).toEqual({
      id: `${update3.source.txId}:${update3.source.lsn}`,
      total_order: 2,
      data_collection_order: 2,
    });

    // Transaction metadata: a BEGIN (with the first event's id) and an END per transaction, the END
    // counting its events.
    await waitFor(`topic ${txTopic}`, () => topicExists(txTopic), 60_000);
    const tx = await read([txTopic]);
    const txIds = [insert, update, del, insert5].map((p) => p.source.txId as number);
    const ofTx = (txId: number) =>
      tx.filter((r) => r.value?.payload.id.startsWith(`${txId}:`)).map((r) => r.value.payload);
    await waitFor(
      'the END of the 4 transactions',
      () => txIds.every((txId) => ofTx(txId).some((p) => p.status === 'END')),
      60_000,
    );
    for (const [i, first] of [insert, update, del, insert5].entries()) {
      const records = ofTx(txIds[i]!);
      expect(records.map((p) => p.status)).toEqual(['BEGIN', 'END']);
      expect(records[0].id).toBe(first.transaction.id);
      expect(records[1]).toMatchObject({
        event_count: i === 3 ? 2 : 1,
        data_collections: [{ data_collection: `public.${table}`, event_count: i === 3 ? 2 : 1 }],
      });
    }
  });
});
