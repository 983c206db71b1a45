import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { freePort } from '../testing/pg-cluster.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { pgClient, randomName, spawnCli, waitFor } from './helpers.js';

// `featureflow ingest` with a Kafka bus: every committed change's feature rows reach the view's
// topic once per position, keyed by entity, with the position and commit time in headers, after the
// DuckDB commit; an ingest killed (SIGKILL) after its commit and before its publish publishes the
// rows on restart.

const brokers = inject('kafkaBrokers');
const kafka = new Kafka({ clientId: 'featureflow-test', brokers, logLevel: logLevel.NOTHING });

let client: pg.Client;
let redis: RedisServer;
beforeAll(async () => {
  client = await pgClient();
  redis = await startRedis();
});
afterAll(async () => {
  await client?.end();
  await redis?.stop();
});

interface BusRecord {
  readonly key: string | null;
  readonly partition: number;
  readonly value: { o: string; k: unknown[]; v: unknown[] | null } | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** Every record of `topic` so far (read by a throwaway consumer until it reaches the topic's end). */
async function readTopic(topic: string): Promise<BusRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const remaining = new Map(ends.filter((e) => e.high !== e.low).map((e) => [e.partition, BigInt(e.high)]));
  const out: BusRecord[] = [];
  if (remaining.size === 0) return out;
  const consumer = kafka.consumer({ groupId: randomName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers: { [name: string]: string } = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
      const text = message.value?.toString() ?? '';
      out.push({ key: message.key?.toString() ?? null, partition, value: text ? JSON.parse(text) : null, headers });
      if (BigInt(message.offset) + 1n >= remaining.get(partition)!) remaining.delete(partition);
    },
  });
  try {
    await waitFor('the topic to be read to its end', () => remaining.size === 0, 60_000);
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/**
 * A change's identity: entity, commit position, change position (a change committed right after a
 * snapshot may start at the snapshot's very position).
 */
function identity(r: BusRecord): string {
  return `${r.key}@${r.headers['ff-commit-position']}/${r.headers['ff-position']}`;
}

/** The logged changes of `table` (op, id, position, commit time) from the change log, read after the ingest stopped. */
async function logged(dir: string, table: string) {
  const db = await openDuckDB(join(dir, 'store.duckdb'), { readOnly: true });
  try {
    return (
      await db.connection.runAndReadAll(
        `SELECT op, json_extract_string(key, '$.id') AS id, lsn, commit_lsn FROM change_log WHERE table_name = 'public.${table}' ORDER BY seq`,
      )
    )
      .getRows()
      .map(([op, id, lsn, commit]) => ({
        op: String(op),
        id: String(id),
        position: BigInt(lsn as bigint),
        commitPosition: BigInt(commit as bigint),
      }));
  } finally {
    db.close();
  }
}

/** The config of these tests; `online` the online store's adapter call (default the in-process store). */
function configFile(dir: string, table: string, prefix: string, online = 'memory()'): void {
  writeFileSync(
    join(dir, 'featureflow.config.ts'),
    [
      `import { defineConfig, duckdb, entity, featureView, float32, int64, kafkaBus, memory, postgres, redis } from ${JSON.stringify(resolve('dist/index.js'))};`,
      `const point = entity({ name: 'point', keys: ['id'] });`,
      `const points = featureView({ name: 'points', version: 1, entity: point, source: '${table}', features: { x: float32, big: int64 } });`,
      // brokers from KAFKA_BROKERS, so that a run can be pointed at a dead port.
      `export default defineConfig({ source: postgres({ tables: ['${table}'], slot: '${randomName('slot')}' }), store: duckdb({ path: 'store.duckdb' }),`,
      `  features: { views: [points] }, bus: kafkaBus({ topicPrefix: '${prefix}', partitions: 3 }),`,
      `  online: ${online}, ingest: { heartbeatSeconds: 1 }, serve: { port: 0 } });`,
    ].join('\n'),
  );
}

describe('featureflow ingest with a Kafka bus', () => {
  test('every committed change reaches its view topic once, keyed by entity, the values exact, each partition marked through the last commit', async () => {
    const table = randomName('bus');
    const prefix = randomName('ff');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, big int8)`);
    await client.query(
      `INSERT INTO ${table} SELECT g, g / 4.0, g::int8 * 4294967296 * 1024 FROM generate_series(1, 20) g`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-bus-'));
    configFile(dir, table, prefix);
    const env = { KAFKA_BROKERS: brokers.join(',') };

    const first = spawnCli(dir, ['ingest', '--until-caught-up'], env);
    expect((await first.exited).code, first.err()).toBe(0);
    expect(first.out()).toContain('publishing committed feature rows on the kafka bus');
    // Changes after the snapshot: updates, inserts, a delete, in separate transactions.
    await client.query(`UPDATE ${table} SET x = -x WHERE id <= 5`);
    await client.query(`INSERT INTO ${table} VALUES (21, 0.125, 9007199254740993)`);
    await client.query(`DELETE FROM ${table} WHERE id = 2`);
    const second = spawnCli(dir, ['ingest', '--until-caught-up'], env);
    expect((await second.exited).code, second.err()).toBe(0);

    const log = await logged(dir, table);
    const records = await readTopic(`${prefix}.points.v1`);
    const rows = records.filter((r) => r.headers['ff-through'] === undefined);
    const markers = records.filter((r) => r.headers['ff-through'] !== undefined);
    // Once per position: the change log's changes, no more, no fewer.
    const seen = rows.map(identity);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(log.map((c) => `${c.id}@${c.commitPosition}/${c.position}`).sort());
    // Keyed by entity: an entity's records on one partition, in commit order there.
    const byKey = new Map<string, BusRecord[]>();
    for (const r of rows) byKey.set(r.key!, [...(byKey.get(r.key!) ?? []), r]);
    for (const list of byKey.values()) {
      expect(new Set(list.map((r) => r.partition)).size).toBe(1);
      const order = list.map((r) => BigInt(r.headers['ff-commit-position']!));
      expect(order).toEqual([...order].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    // The values, exact (int64 beyond 2^53 as decimal text), against PostgreSQL: each entity's newest record.
    const { rows: current } = await client.query(`SELECT id, x, big::text AS big FROM ${table} ORDER BY id`);
    const newest = new Map([...byKey].map(([k, list]) => [k, list.at(-1)!]));
    for (const row of current) {
      const r = newest.get(String(row.id))!;
      expect(r.value!.o).not.toBe('d');
      expect(r.value!.k).toEqual([row.id]);
      expect(r.value!.v).toEqual([Math.fround(row.x), row.big]);
      expect(BigInt(r.headers['ff-commit-time']!)).toBeGreaterThan(0n);
    }
    expect(newest.get('2')!.value).toMatchObject({ o: 'd', v: null });
    // Each partition is marked complete through the last commit.
    const last = log.reduce((m, c) => (c.commitPosition > m ? c.commitPosition : m), 0n);
    for (let p = 0; p < 3; p++) {
      const marks = markers.filter((m) => m.partition === p).map((m) => BigInt(m.headers['ff-through']!));
      expect(marks.length).toBeGreaterThan(0);
      expect(marks.at(-1)! >= last).toBe(true);
    }
  });

  test('serve --ingest reads the source, publishes after each commit and serves what it consumes back', async () => {
    const table = randomName('bus_both');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, big int8)`);
    await client.query(`INSERT INTO ${table} VALUES (1, 0.5, 1)`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-bus-both-'));
    configFile(dir, table, randomName('ff'), `redis({ url: '${redis.url}', prefix: '${randomName('ff')}' })`);
    const serve = spawnCli(dir, ['serve', '--ingest'], { KAFKA_BROKERS: brokers.join(',') });
    try {
      // Two lines, written one after the other: the second may come in a later chunk.
      await waitFor(
        'serve to start and say what it reads',
        () => serve.out().includes('serving on') && /kafka bus.*\n/.test(serve.out()),
        120_000,
      );
      expect(serve.out()).toContain('reading the source and publishing feature rows on the kafka bus');
      const url = /serving on (\S+)/.exec(serve.out())![1]!;
      await client.query(`INSERT INTO ${table} VALUES (2, 0.25, 9007199254740993)`);
      const features = async (id: number) => {
        const res = await fetch(`${url}/features/points/${id}`);
        return res.status === 200 ? ((await res.json()) as { values: unknown }).values : res.status;
      };
      await waitFor('the insert to come back through Kafka', async () => (await features(2)) !== 404, 60_000);
      expect(await features(2)).toEqual({ x: 0.25, big: '9007199254740993' });
      expect(await features(1)).toEqual({ x: 0.5, big: 1 });
      serve.child.kill('SIGTERM');
      expect((await serve.exited).code, serve.err()).toBe(0);
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  test('serve --until-caught-up is refused on a bus, naming what to run instead', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-bus-serve-'));
    configFile(dir, randomName('bus_serve'), randomName('ff'));
    const serve = spawnCli(dir, ['serve', '--until-caught-up'], { KAFKA_BROKERS: brokers.join(',') });
    expect((await serve.exited).code).toBe(1);
    expect(serve.err()).toMatch(/FF_CONFIG_INVALID.*featureflow ingest --until-caught-up/);
  });

  test('serve on a bus between processes refuses an in-process online store, naming the shared one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-bus-memory-'));
    configFile(dir, randomName('bus_memory'), randomName('ff'));
    for (const args of [['serve'], ['serve', '--ingest']]) {
      const serve = spawnCli(dir, args, { KAFKA_BROKERS: brokers.join(',') });
      expect((await serve.exited).code, serve.err()).toBe(1);
      expect(serve.err()).toMatch(/FF_CONFIG_INVALID.*memory online store.*online: redis\(\{ url/);
      // Refused before anything runs: no stack trace.
      expect(serve.err()).not.toMatch(/\n\s+at /);
    }
  });

  test('an ingest killed between its commit and its publish publishes the committed rows on restart', async () => {
    const table = randomName('bus_kill');
    const prefix = randomName('ff');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, x float8, big int8)`);
    await client.query(`INSERT INTO ${table} SELECT g, g, g FROM generate_series(1, 30) g`);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-kafka-bus-kill-'));
    configFile(dir, table, prefix);

    // Kafka unreachable (a port nothing listens on): the snapshot commits, its publish fails and is
    // retried; killed meanwhile, the store holds rows no one published.
    const dead = { KAFKA_BROKERS: `127.0.0.1:${await freePort()}`, FEATUREFLOW_LOG_LEVEL: 'warn' };
    const first = spawnCli(dir, ['ingest'], dead);
    await waitFor('the publish to fail', () => /FF_KAFKA_UNREACHABLE|cannot be reached/.test(first.err()), 120_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const committed = await logged(dir, table);
    expect(committed).toHaveLength(30);
    const db = await openDuckDB(join(dir, 'store.duckdb'), { readOnly: true });
    try {
      const published = (await db.connection.runAndReadAll('SELECT published FROM _checkpoint')).getRows();
      expect(published).toEqual([[null]]);
    } finally {
      db.close();
    }

    await client.query(`UPDATE ${table} SET x = x + 1 WHERE id <= 10`);
    const second = spawnCli(dir, ['ingest', '--until-caught-up'], { KAFKA_BROKERS: brokers.join(',') });
    expect((await second.exited).code, second.err()).toBe(0);
    const log = await logged(dir, table);
    expect(log).toHaveLength(40);
    const rows = (await readTopic(`${prefix}.points.v1`)).filter((r) => r.headers['ff-through'] === undefined);
    const seen = new Set(rows.map(identity));
    expect([...seen].sort()).toEqual(log.map((c) => `${c.id}@${c.commitPosition}/${c.position}`).sort());
  });
});
