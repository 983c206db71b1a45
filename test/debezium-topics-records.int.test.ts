import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { resolveConfig } from '../framework/config.js';
import { closeContainer, createContainer, DEFAULTS, TOKENS } from '../index.js';
import { type DebeziumTopicsConfig, debeziumTopics } from '../sources/kafka/index.js';
import { duckdb } from '../stores/duckdb/index.js';
import { randomName, readChangeLog, replay } from './helpers.js';

// The debeziumTopics source against the real broker, with records written by hand in Debezium's
// shapes (JsonConverter without schemas; ExtractNewRecordState's flattened rows): what it refuses,
// and the flattened form.

const brokers = inject('kafkaBrokers');
const kafka = new Kafka({ clientId: 'featureflow-test', brokers, logLevel: logLevel.NOTHING });
const producer = kafka.producer();
beforeAll(async () => {
  await producer.connect();
});
afterAll(async () => {
  await producer.disconnect();
});

/** A Debezium insert of row `id` of public.items, as JsonConverter writes it without schemas. */
function insert(id: number, lsn: number) {
  return {
    key: JSON.stringify({ id }),
    value: JSON.stringify({
      before: null,
      after: { id, name: `n${id}` },
      source: { connector: 'postgresql', schema: 'public', table: 'items', lsn, ts_ms: 1_700_000_000_000, txId: 7 },
      op: 'c',
      ts_ms: 1_700_000_000_001,
    }),
  };
}

async function ingest(prefix: string, path: string, source: Partial<DebeziumTopicsConfig> = {}) {
  const config = resolveConfig(
    {
      logLevel: 'silent',
      source: debeziumTopics({
        brokers,
        topicPrefix: prefix,
        tables: ['public.items'],
        group: randomName('group'),
        ...source,
      }),
      store: duckdb({ path }),
    },
    DEFAULTS,
  );
  const container = await createContainer(config);
  try {
    return await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
  } finally {
    await closeContainer(container);
  }
}

describe('the debeziumTopics source refuses what it cannot read', () => {
  test('a record that is not a change stops the ingest naming topic, partition and offset; the changes before it are kept', async () => {
    const prefix = randomName('dbzerr');
    const topic = `${prefix}.public.items`;
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-dbzerr-')), 'featureflow.duckdb');
    await producer.send({ topic, messages: [insert(1, 100), insert(2, 200)] });
    await producer.send({ topic, messages: [{ key: '{"id":3}', value: 'not json' }, insert(4, 400)] });
    const error = await ingest(prefix, path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'FF_KAFKA_RECORD_UNDECODABLE', retriable: false });
    expect((error as Error).message).toContain(`record ${topic}/0@2 `);
    expect((error as Error).message).toContain('not JSON');
    const { changes } = await readChangeLog(path);
    expect(changes.map((c) => [c.op, c.after?.id])).toEqual([
      ['c', 1n],
      ['c', 2n],
    ]);
  });

  test('a topic that does not exist is refused before anything is written, naming it', async () => {
    const prefix = randomName('dbzerr');
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-dbzerr-')), 'featureflow.duckdb');
    const error = await ingest(prefix, path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'FF_KAFKA_TOPIC_EMPTY' });
    expect((error as Error).message).toContain(`${prefix}.public.items`);
  });

  test('flattened records (ExtractNewRecordState): rows, deletes as __deleted rows or tombstones, unchanged TOAST filled', async () => {
    const prefix = randomName('dbzflat');
    const topic = `${prefix}.public.items`;
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-dbzflat-')), 'featureflow.duckdb');
    const row = (id: number, name: string, extra: object = {}) => ({
      key: JSON.stringify({ id }),
      value: JSON.stringify({
        id,
        name,
        note: `note ${id}`,
        __op: 'c',
        __lsn: 100 + id,
        __source_ts_ms: 1_700_000_000_000,
        ...extra,
      }),
    });
    await producer.send({
      topic,
      messages: [
        row(1, 'one'),
        row(2, 'two'),
        row(3, 'three'),
        // An update leaving note (TOASTed) alone; delete.handling.mode=rewrite (a row, then a tombstone); a delete as a bare tombstone.
        row(1, 'ONE', { __op: 'u', __lsn: 200, note: '__debezium_unavailable_value' }),
        row(2, 'two', { __op: 'd', __lsn: 201, __deleted: 'true' }),
        { key: JSON.stringify({ id: 2 }), value: null },
        { key: JSON.stringify({ id: 3 }), value: null },
        // A duplicate of the update (Debezium after a connector restart).
        row(1, 'ONE', { __op: 'u', __lsn: 200, note: '__debezium_unavailable_value' }),
      ],
    });
    await ingest(prefix, path, { flattened: true, schemas: 'without' });
    const { changes } = await readChangeLog(path);
    expect(changes.map((c) => [c.op, c.key])).toEqual([
      ['c', '{"id":1}'],
      ['c', '{"id":2}'],
      ['c', '{"id":3}'],
      ['u', '{"id":1}'],
      ['d', '{"id":2}'],
      ['d', '{"id":3}'],
    ]);
    expect(replay(changes, 'public.items')).toEqual(new Map([['{"id":1}', { id: 1n, name: 'ONE', note: 'note 1' }]]));
  });

  test('through the CLI: ingest --until-caught-up resumes from the stored offsets, status shows them, teardown deletes only the group', async () => {
    const prefix = randomName('dbzcli');
    const topic = `${prefix}.public.items`;
    const group = randomName('group');
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-dbzcli-'));
    writeFileSync(
      join(dir, 'featureflow.config.ts'),
      [
        `import { debeziumTopics, defineConfig } from ${JSON.stringify(resolve('dist/index.js'))};`,
        `export default defineConfig({`,
        `  source: debeziumTopics({ brokers: ${JSON.stringify(brokers)}, topicPrefix: '${prefix}', tables: ['public.items'], group: '${group}' }),`,
        `  logLevel: 'warn',`,
        `});`,
      ].join('\n'),
    );
    await producer.send({ topic, messages: [insert(1, 100), insert(2, 200), insert(3, 300)] });
    const first = await cli(['ingest', '--until-caught-up'], dir);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/3 changes applied/);
    await producer.send({ topic, messages: [insert(4, 400)] });
    const second = await cli(['ingest', '--until-caught-up'], dir);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^1 changes? applied/m);

    const status = await cli(['status', '--json'], dir);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report.source).toMatchObject({ kind: 'debezium-topics', lag: 0, lagUnit: 'records' });
    expect(report.changeLog.tables).toEqual([{ table: 'public.items', changes: 4, byOp: { c: 4 } }]);

    const teardown = await cli(['teardown', '--yes'], dir);
    expect(teardown.code, teardown.stderr).toBe(0);
    expect(teardown.stdout).toContain(`consumer group ${group}`);
    const admin = kafka.admin();
    await admin.connect();
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
    const topics = await admin.listTopics();
    await admin.disconnect();
    expect(groups).not.toContain(group);
    expect(topics).toContain(topic);
  });
});

const run = promisify(execFile);

/** The CLI as a user runs it, in `cwd`; its exit code and output. */
async function cli(args: string[], cwd: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, [resolve('bin/featureflow.js'), ...args], {
      cwd,
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
