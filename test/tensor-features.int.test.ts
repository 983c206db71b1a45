import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromIPC, type Table } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { featureView, int32, tensor } from '../framework/features/index.js';
import { defineDigitsView, image } from '../features/digits/index.js';
import { toTensors } from '../scorers/tfjs/tensors.js';
import { PARQUET_TENSORS_KEY } from '../stores/duckdb/offline/feature-export.js';
import { pgClient, randomName, testConfig } from './helpers.js';

// Tensor features are fixed-size arrays end to end: the history's FLOAT[784] / INTEGER[784] columns
// come out as Arrow FixedSizeLists with their shape, as Parquet lists with the shapes in the file's
// key-value metadata and in the manifest, and as TF.js tensors. The oracle is PostgreSQL's bytes.

let client: pg.Client;
const duck = await DuckDBInstance.create(':memory:');
const reader = await duck.connect();
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
  reader.closeSync();
  duck.closeSync();
});

/** Every image of the table, by id, as PostgreSQL holds it (null pixels left out). */
async function imagesOf(table: string): Promise<Map<number, Buffer>> {
  const { rows } = await client.query(`SELECT id, pixels FROM ${table} WHERE pixels IS NOT NULL ORDER BY id`);
  return new Map(rows.map((r: { id: number; pixels: Buffer }) => [r.id, r.pixels]));
}

/** The elements the digits view makes of one image's bytes, as float32. */
const scaled = (bytes: Buffer) => Float32Array.from(bytes, (b) => b / 255);

/** Row `i` of a FixedSizeList column, as a plain array. */
const elementsAt = (table: Table, column: string, i: number) =>
  Array.from(table.getChild(column)!.get(i) as ArrayLike<number>);

describe('tensor features as fixed-size arrays', () => {
  test('history, Arrow, Parquet (shape in key-value metadata and manifest) and toTensors equal the source bytes', async () => {
    const schema = randomName('tensors');
    const table = `${schema}.digits`;
    await client.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${table} (id int PRIMARY KEY, label int, pixels bytea)`);
    // Random images, more than a DuckDB chunk (2048 rows) and an Arrow batch of them.
    const insert = (from: number, to: number) =>
      client.query(
        `INSERT INTO ${table} SELECT i, i % 10, (SELECT decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), 'hex') FROM generate_series(1, 784) WHERE i > 0) FROM generate_series($1::int, $2::int) i`,
        [from, to],
      );
    await insert(1, 2500);
    const digits = defineDigitsView(table);
    // The same bytes as exact integers, in a nested shape.
    const raw = featureView({
      name: 'raw_pixels',
      version: 1,
      entity: image,
      source: table,
      features: { bytes: tensor('int32', [4, 7, 28]), label: int32 },
      transform: (row) => ({ bytes: Int32Array.from(row.pixels as Uint8Array), label: row.label as number }),
    });
    const config = testConfig([table], { features: { views: [digits, raw] } });
    const container = await createContainer(config);
    try {
      const engine = await container.getAsync(TOKENS.IngestEngine);
      await engine.run({ untilCaughtUp: true });
      // The stream: new images, changed images, a deleted one.
      await insert(2501, 2700);
      await client.query(
        `UPDATE ${table} SET pixels = (SELECT decode(string_agg(lpad(to_hex((random() * 255)::int), 2, '0'), ''), 'hex') FROM generate_series(1, 784) WHERE id > 0) WHERE id % 97 = 0`,
      );
      await client.query(`DELETE FROM ${table} WHERE id IN (5, 2600)`);
      await engine.run({ untilCaughtUp: true });
      const images = await imagesOf(table);
      const store = await container.getAsync(TOKENS.OfflineStore);

      const latest = await store.latest(digits);
      const pixels = latest.schema.fields.find((f) => f.name === 'pixels')!;
      expect(String(pixels.type)).toBe('FixedSizeList[784]<Float32>');
      expect(pixels.metadata.get('featureflow.shape')).toBe('[28,28]');
      expect(latest.numRows).toBe(images.size);
      const ids = Array.from(latest.getChild('id')!.toArray() as Int32Array);
      expect(ids).toEqual([...images.keys()]);
      ids.forEach((id, i) => {
        expect(elementsAt(latest, 'pixels', i), `image ${id}`).toEqual(Array.from(scaled(images.get(id)!)));
      });

      const rawLatest = await store.latest(raw);
      expect(String(rawLatest.schema.fields.find((f) => f.name === 'bytes')!.type)).toBe('FixedSizeList[784]<Int32>');
      ids.forEach((id, i) => {
        expect(elementsAt(rawLatest, 'bytes', i), `image ${id}`).toEqual(Array.from(images.get(id)!));
      });

      // TF.js: every example in its shape, element for element; rows dropped for null features (deleted
      // images, an unknown id).
      const { x } = toTensors(rawLatest, { features: ['bytes'] });
      expect(x.shape).toEqual([images.size, 4, 7, 28]);
      expect(Array.from(await x.data())).toEqual(ids.flatMap((id) => Array.from(images.get(id)!)));
      x.dispose();
      const spine = [3, 5, 4, 2600, 6, 7, 99999].map((id) => ({ id, event_timestamp: new Date() }));
      const train = await store.trainingSet({ spine, features: [digits.select('pixels')] });
      const { x: kept } = toTensors(train, { features: ['pixels'], dropNulls: true });
      expect(kept.shape).toEqual([4, 28, 28]);
      expect(Array.from(await kept.data())).toEqual([3, 4, 6, 7].flatMap((id) => Array.from(scaled(images.get(id)!))));
      kept.dispose();

      // Parquet: a list per row, the shapes in the file's key-value metadata and in the manifest.
      const dir = mkdtempSync(join(tmpdir(), 'featureflow-tensors-'));
      const file = join(dir, 'raw.parquet');
      const result = await store.export({ view: raw }, file);
      const tensors = { bytes: { dtype: 'int32', shape: [4, 7, 28] } };
      expect(result.manifest.tensors).toEqual(tensors);
      expect(JSON.parse(readFileSync(`${file}.manifest.json`, 'utf8')).tensors).toEqual(tensors);
      const kv = (
        await reader.runAndReadAll(
          `SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata('${file}') WHERE decode(key) = '${PARQUET_TENSORS_KEY}'`,
        )
      ).getRowObjects();
      expect(kv.map((r) => JSON.parse(r.value as string))).toEqual([tensors]);
      const parquet = (
        await reader.runAndReadAll(`SELECT id, bytes::INTEGER[] AS bytes FROM read_parquet('${file}') ORDER BY id`)
      ).getRowObjects();
      expect(parquet.map((r) => r.id)).toEqual(ids);
      parquet.forEach((r) => {
        const bytes = (r.bytes as { items: number[] }).items;
        expect(bytes, `image ${r.id}`).toEqual(Array.from(images.get(r.id as number)!));
      });

      // Arrow IPC: the FixedSizeList and its shape survive the file.
      const arrowFile = join(dir, 'digits.arrow');
      const arrowResult = await store.export({ view: digits }, arrowFile);
      expect(arrowResult.manifest.tensors).toEqual({ pixels: { dtype: 'float32', shape: [28, 28] } });
      const fromFile = tableFromIPC(readFileSync(arrowFile));
      expect(fromFile.schema.fields.find((f) => f.name === 'pixels')!.metadata.get('featureflow.shape')).toBe(
        '[28,28]',
      );
      expect(elementsAt(fromFile, 'pixels', fromFile.numRows - 1)).toEqual(
        Array.from(scaled(images.get(ids[ids.length - 1]!)!)),
      );

      // A view without tensors: no tensor metadata, and an empty `tensors` in the manifest.
      const labels = await store.export(
        { trainingSet: { spine, features: ['raw_pixels:label'] } },
        join(dir, 'l.parquet'),
      );
      expect(labels.manifest.tensors).toEqual({});
    } finally {
      await closeContainer(container);
    }
  });
});
