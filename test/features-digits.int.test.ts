import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { tableFromIPC } from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, test } from 'vitest';
import { closeContainer, createContainer, openOfflineStore, TOKENS } from '../index.js';
import { registerExportCommand } from '../framework/cli/export-command.js';
import { featureService } from '../framework/features/index.js';
import { toTensors } from '../scorers/tfjs/tensors.js';
import { defineDigitsView } from '../features/digits/index.js';
import { pgClient, randomName, testConfig } from './helpers.js';
import { rowsOf } from './features-helpers.js';

const pixelsOf = (id: number) => Buffer.from(Array.from({ length: 784 }, (_, k) => (id * 7 + k) % 256));
const duck = await DuckDBInstance.create(':memory:');
const reader = await duck.connect();
afterAll(() => {
  reader.closeSync();
  duck.closeSync();
});

describe('the digits example end to end', () => {
  test('bytea images become 28×28 tensors: training set, TF.js tensors, CLI exports to Parquet and Arrow', async () => {
    const schema = randomName('digits');
    const client = await pgClient();
    await client.query(
      `CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.digits (id int PRIMARY KEY, label int, pixels bytea)`,
    );
    for (let id = 1; id <= 40; id++)
      await client.query(`INSERT INTO ${schema}.digits VALUES ($1, $2, $3)`, [id, id % 10, pixelsOf(id)]);
    // Two rows the transform rejects: a short image, and none at all.
    await client.query(`INSERT INTO ${schema}.digits VALUES (41, 1, $1), (42, 2, NULL)`, [Buffer.alloc(100)]);
    const digits = defineDigitsView(`${schema}.digits`);
    const classifier = featureService({ name: 'digit_classifier', features: [digits.select('pixels')] });
    const config = testConfig([`${schema}.digits`], { features: { views: [digits], services: [classifier] } });

    const container = await createContainer(config);
    let before: bigint;
    try {
      await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
      before = BigInt(
        (await client.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8::text AS t`)).rows[0].t,
      );
      await client.query(`UPDATE ${schema}.digits SET label = 9 WHERE id = 1`);
      await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
      const store = await container.getAsync(TOKENS.OfflineStore);

      const status = (await store.status()).find((s) => s.view === 'digits')!;
      expect(status).toMatchObject({ entities: 40, deadLetters: 2 });

      // Labels from the view's own column; an unknown id gives nulls, dropped before training.
      const spine = [1, 2, 3, 4, 5, 999].map((id) => ({ id, event_timestamp: new Date() }));
      const train = await store.trainingSet({ spine, features: [digits] });
      expect(train.schema.fields.map((f) => f.name)).toEqual(['id', 'event_timestamp', 'pixels', 'label']);
      expect(train.schema.fields[2]!.metadata.get('featureflow.shape')).toBe('[28,28]');
      const { x, y } = toTensors(train, { features: ['pixels'], label: 'label', oneHot: 10, dropNulls: true });
      expect(x.shape).toEqual([5, 28, 28]);
      expect(y!.shape).toEqual([5, 10]);
      const first = (await x.array()) as number[][][];
      expect(first[1]![0]![5]).toBeCloseTo(((2 * 7 + 5) % 256) / 255, 6);
      expect(Array.from(await y!.argMax(1).data())).toEqual([9, 2, 3, 4, 5]);
      x.dispose();
      y!.dispose();
    } finally {
      await closeContainer(container);
    }

    // The rows the view rejected, from the file the ingest left (opened read-only).
    const offline = await openOfflineStore(config.store.config.path, { definitions: config.features });
    try {
      expect(rowsOf(await offline.deadLetters()).map((d) => d.error)).toEqual([
        'feature pixels: got a Float32Array of length 100 for a tensor<float32>[28,28] feature; return 784 numbers (shape [28, 28], row-major) as a typed array or number array',
        expect.stringMatching(/^transform threw: /),
      ]);
    } finally {
      offline.close();
    }

    // The CLI's export command, on the same file; its config is the test's.
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-export-'));
    const program = new Command('featureflow').exitOverride();
    registerExportCommand(program, {
      loadConfig: async () => config,
      async withContainer(_cmd, body) {
        const exporting = await createContainer(config);
        try {
          return await body(exporting, config);
        } finally {
          await closeContainer(exporting);
        }
      },
    });
    const run = (...args: string[]) => program.parseAsync(['node', 'featureflow', 'export', ...args]);

    await run('digits', '--out', join(dir, 'latest.parquet'));
    const parquet = (
      await reader.runAndReadAll(
        `SELECT id, label, len(pixels) AS n, pixels[6] AS p FROM read_parquet('${join(dir, 'latest.parquet')}') ORDER BY id`,
      )
    ).getRowObjects();
    expect(parquet).toHaveLength(40);
    expect(parquet[0]).toMatchObject({ id: 1, label: 9, n: 784n });
    expect(parquet[0]!.p).toBeCloseTo(((7 + 5) % 256) / 255, 6);

    await run('digits', '--as-of', new Date(Number(before! / 1000n)).toISOString(), '--out', join(dir, 'before.arrow'));
    const asOf = tableFromIPC(readFileSync(join(dir, 'before.arrow')));
    expect(asOf.numRows).toBe(40);
    expect(String(asOf.schema.fields.find((f) => f.name === 'pixels')!.type)).toBe('FixedSizeList[784]<Float32>');
    expect(asOf.getChild('label')!.get(0)).toBe(1);

    writeFileSync(
      join(dir, 'spine.csv'),
      'id,event_timestamp,y\n3,2100-01-01T00:00:00Z,3\n777,2100-01-01T00:00:00Z,7\n1,2000-01-01 00:00:00,1\n',
    );
    await run('digit_classifier', '--spine', join(dir, 'spine.csv'), '--out', join(dir, 'train.parquet'));
    const rows = (
      await reader.runAndReadAll(
        `SELECT id, y, pixels IS NULL AS missing FROM read_parquet('${join(dir, 'train.parquet')}')`,
      )
    ).getRowObjects();
    expect(rows).toEqual([
      { id: 3n, y: 3n, missing: false },
      { id: 777n, y: 7n, missing: true },
      { id: 1n, y: 1n, missing: true },
    ]);
    const manifest = JSON.parse(readFileSync(join(dir, 'train.parquet.manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      kind: 'trainingSet',
      format: 'parquet',
      rows: 3,
      file: 'train.parquet',
      spine: { rows: 3, timestampColumn: 'event_timestamp' },
      views: [{ name: 'digits', version: 1, table: 'fv_digits_v1', features: ['pixels'], ttlMicros: null }],
    });
    expect(manifest.views[0].fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.lsnWatermark).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(manifest.rule).toMatch(/newest version with valid_from <= t/);

    await expect(run('digit_classifier', '--out', join(dir, 'x.parquet'))).rejects.toMatchObject({ code: 'FF_EXPORT' });
    await client.end();
  });
});
