import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { resolveConfig } from '../framework/config.js';
import { closeContainer, createContainer, DEFAULTS, TOKENS } from '../index.js';
import { debeziumTopics } from '../sources/kafka/index.js';
import { duckdb } from '../stores/duckdb/index.js';
import { randomName, readChangeLog } from './helpers.js';

// The debeziumTopics source's refusals, against the real broker with records written by hand in
// Debezium's shape (JsonConverter without schemas).

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

async function ingest(prefix: string, path: string) {
  const config = resolveConfig(
    {
      logLevel: 'silent',
      source: debeziumTopics({ brokers, topicPrefix: prefix, tables: ['public.items'], group: randomName('group') }),
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
});
