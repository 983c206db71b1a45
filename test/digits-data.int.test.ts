import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { type Digit, drawDigit, loadMnistDigits, PACKAGE_SPLIT, readIdxDigits } from '../features/digits/index.js';
import { pgClient, pgUrl, randomName } from './helpers.js';

// The digits example's data: the mnist package's digits numbered once, full MNIST's IDX files
// streamed, and both loaded into PostgreSQL with COPY; PostgreSQL is the oracle for what was stored.

const run = promisify(execFile);
let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** An IDX file: magic, dimensions, bytes. */
function idx(magic: number, dims: number[], bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(magic, 0);
  for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
  return Buffer.concat([header, bytes]);
}

/** IDX files of `train` and `test` digits in a new directory: the train files gzipped, the test files not. */
function idxDir(train: readonly Digit[], test: readonly Digit[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-idx-'));
  for (const [prefix, set, gz] of [
    ['train', train, true],
    ['t10k', test, false],
  ] as const) {
    const images = idx(0x803, [set.length, 28, 28], Buffer.concat(set.map((d) => d.pixels)));
    const labels = idx(
      0x801,
      [set.length],
      Uint8Array.from(set, (d) => d.label),
    );
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(images) : images);
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(labels) : labels);
  }
  return dir;
}

async function collect(dir: string, batchSize?: number): Promise<Digit[]> {
  const all: Digit[] = [];
  for await (const batch of readIdxDigits(dir, batchSize ? { batchSize } : {})) all.push(...batch);
  return all;
}

describe('the mnist package digits', () => {
  test('are numbered 1…10000 with their labels and pixel bytes, and the split mixes all ten digits', () => {
    const digits = loadMnistDigits();
    expect(digits).toHaveLength(10_000);
    expect(digits.map((d) => d.id)).toEqual(Array.from({ length: 10_000 }, (_, i) => i + 1));
    // The package itself is the oracle: every one of its images appears once, byte for byte.
    const classes = createRequire(import.meta.url)('mnist') as { raw: number[]; length: number }[];
    const key = (label: number, pixels: ArrayLike<number>) =>
      `${label}:${Buffer.from(pixels as Uint8Array).toString('base64')}`;
    const expected = new Map<string, number>();
    classes.slice(0, 10).forEach((c, label) => {
      for (let i = 0; i < c.length; i++) {
        const bytes = Uint8Array.from(c.raw.slice(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));
        const k = key(label, bytes);
        expected.set(k, (expected.get(k) ?? 0) + 1);
      }
    });
    const actual = new Map<string, number>();
    for (const d of digits) actual.set(key(d.label, d.pixels), (actual.get(key(d.label, d.pixels)) ?? 0) + 1);
    expect(actual).toEqual(expected);
    for (const range of [PACKAGE_SPLIT.train, PACKAGE_SPLIT.heldOut]) {
      const labels = new Set(digits.slice(range.from - 1, range.to).map((d) => d.label));
      expect([...labels].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  });

  test('draw as 14 lines of 28 block characters, ink where the pixels are dark', () => {
    const pixels = new Uint8Array(784);
    pixels[0] = 255; // top-left: upper half of the first cell
    pixels[28 * 27 + 27] = 255; // bottom-right: lower half of the last cell
    pixels[28 * 4 + 3] = 255;
    pixels[28 * 5 + 3] = 255; // both halves of one cell
    const lines = drawDigit(pixels);
    expect(lines).toHaveLength(14);
    expect(lines.every((l) => [...l].length === 28)).toBe(true);
    expect(lines[0]![0]).toBe('▀');
    expect(lines[13]![27]).toBe('▄');
    expect(lines[2]![3]).toBe('█');
    expect(lines.join('').replaceAll(' ', '')).toBe('▀█▄');
  });
});

describe('MNIST IDX files', () => {
  const digits = loadMnistDigits();
  const train = digits.slice(0, 25);
  const heldOut = digits.slice(25, 32);

  test('stream as digits: training images first (ids from 1), then test images, in bounded batches', async () => {
    const dir = idxDir(train, heldOut);
    const read = await collect(dir, 10);
    expect(read.map((d) => d.id)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    expect(read.map((d) => d.label)).toEqual([...train, ...heldOut].map((d) => d.label));
    expect(read.map((d) => Buffer.from(d.pixels).toString('hex'))).toEqual(
      [...train, ...heldOut].map((d) => Buffer.from(d.pixels).toString('hex')),
    );
    const sizes: number[] = [];
    for await (const batch of readIdxDigits(dir, { batchSize: 10 })) sizes.push(batch.length);
    expect(sizes).toEqual([10, 10, 5, 7]);
  });

  test('that are missing, of the wrong kind or truncated are refused with FF_DIGITS_IDX naming the file', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'featureflow-idx-'));
    await expect(collect(empty)).rejects.toMatchObject({
      code: 'FF_DIGITS_IDX',
      message: expect.stringMatching(/train-labels-idx1-ubyte\.gz .*is not in/),
    });

    const swapped = idxDir(train, heldOut);
    const labels = idx(
      0x801,
      [train.length],
      Uint8Array.from(train, (d) => d.label),
    );
    writeFileSync(join(swapped, 'train-images-idx3-ubyte.gz'), gzipSync(labels));
    await expect(collect(swapped)).rejects.toMatchObject({
      code: 'FF_DIGITS_IDX',
      message: expect.stringMatching(
        /train-images-idx3-ubyte\.gz starts with 0x00000801, not the IDX magic 0x00000803/,
      ),
    });

    const truncated = idxDir(train, heldOut);
    const images = idx(0x803, [heldOut.length, 28, 28], Buffer.concat(heldOut.map((d) => d.pixels)));
    writeFileSync(join(truncated, 't10k-images-idx3-ubyte'), images.subarray(0, images.length - 100));
    await expect(collect(truncated)).rejects.toMatchObject({
      code: 'FF_DIGITS_IDX',
      message: expect.stringMatching(/t10k-images-idx3-ubyte holds 6 of the 7 images its header says/),
    });
  });
});

describe('npm run digits:load', () => {
  const load = (args: string[]) =>
    run(process.execPath, [resolve('node_modules/tsx/dist/cli.mjs'), 'features/digits/load.ts', ...args], {
      env: { ...process.env, DATABASE_URL: pgUrl() },
      timeout: 120_000,
    });

  test('loads IDX files into PostgreSQL with COPY: every id, label and pixel byte as read; again only with --replace', async () => {
    const schema = randomName('digits');
    await client.query(`CREATE SCHEMA ${schema}`);
    const digits = loadMnistDigits();
    const expected = digits.slice(100, 160);
    const dir = idxDir(expected.slice(0, 50), expected.slice(50));
    const { stdout } = await load(['--idx', dir, '--table', `${schema}.digits`]);
    expect(stdout).toMatch(new RegExp(`loaded 60 digits into ${schema}\\.digits`));
    const { rows } = await client.query(
      `SELECT id, label, encode(pixels, 'hex') AS hex FROM ${schema}.digits ORDER BY id`,
    );
    expect(rows).toEqual(
      expected.map((d, i) => ({ id: i + 1, label: d.label, hex: Buffer.from(d.pixels).toString('hex') })),
    );

    await expect(load(['--idx', dir, '--table', `${schema}.digits`])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/FF_DIGITS_DATA: .* already holds digits with these ids; run again with --replace/),
    });
    await load(['--idx', dir, '--table', `${schema}.digits`, '--replace']);
    expect((await client.query(`SELECT count(*)::int AS n FROM ${schema}.digits`)).rows[0].n).toBe(60);
  });

  test('loads the mnist package digits by default: 10,000 rows equal to loadMnistDigits()', async () => {
    const schema = randomName('digits');
    await client.query(`CREATE SCHEMA ${schema}`);
    await load(['--table', `${schema}.digits`]);
    const { rows } = await client.query(
      `SELECT count(*)::int AS n, md5(string_agg(id || ':' || label || ':' || encode(pixels, 'hex'), ',' ORDER BY id)) AS digest FROM ${schema}.digits`,
    );
    const text = loadMnistDigits()
      .map((d) => `${d.id}:${d.label}:${Buffer.from(d.pixels).toString('hex')}`)
      .join(',');
    const { createHash } = await import('node:crypto');
    expect(rows[0]).toEqual({ n: 10_000, digest: createHash('md5').update(text).digest('hex') });
  });
});
