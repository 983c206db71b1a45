import { ARRAY, BIGINT, DuckDBDataChunk, FLOAT, VARCHAR } from '@duckdb/node-api';
import { afterAll, expect, test } from 'vitest';
import { ValidityMask } from '../stores/duckdb/chunk-columns.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import {
  appendChunks,
  type ColumnChunk,
  insertChunks,
  insertStaged,
  type StagedChunk,
} from '../stores/duckdb/staged-insert.js';

const db = await openDuckDB(':memory:');
const c = db.connection;
afterAll(() => db.close());

const TYPES = [BIGINT, VARCHAR, ARRAY(FLOAT, 3)];
await c.run('CREATE TABLE t (id BIGINT, name VARCHAR, v FLOAT[3])');

/** Rows [from, to): id, its name (null for multiples of 5), and [id, id + 0.5, -id]. */
function chunk(from: number, to: number): ColumnChunk {
  const n = to - from;
  const ids = new BigInt64Array(n);
  const names: (string | null)[] = [];
  const v = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const id = from + i;
    ids[i] = BigInt(id);
    names.push(id % 5 === 0 ? null : `row ${id}`);
    v.set([id, id + 0.5, -id], i * 3);
  }
  return {
    length: n,
    columns: [
      { kind: 'fixed', data: ids },
      { kind: 'values', values: names },
      { kind: 'array', elements: v },
    ],
  };
}

test('rows of several chunks go in whole and in order, empty chunks skipped; a failing chunk inserts nothing', async () => {
  // 2048 rows is DuckDB's vector size: the chunks are as large as a table function's output may be.
  const chunks = [chunk(0, 2048), chunk(2048, 2048), chunk(2048, 2100), chunk(2100, 4148)];
  await insertStaged(c, 't', TYPES, chunks);
  const rows = (await c.runAndReadAll('SELECT id, name, v FROM t')).getRowsJson() as [
    string,
    string | null,
    number[],
  ][];
  expect(rows.length).toBe(4148);
  rows.forEach(([id, name, v], i) => {
    expect(Number(id)).toBe(i);
    expect(name).toBe(i % 5 === 0 ? null : `row ${i}`);
    expect(v).toEqual([i, i + 0.5, -i]);
  });

  // Nulls by validity mask, inside an explicit transaction that rolls back.
  const ids = new BigInt64Array([10_000n, 10_001n]);
  const mask = new ValidityMask(2);
  mask.setNull(1);
  await c.run('BEGIN TRANSACTION');
  await insertStaged(c, 't', TYPES, [
    {
      length: 2,
      columns: [
        { kind: 'fixed', data: ids, validity: mask.bytes },
        { kind: 'values', values: ['a', 'b'] },
        { kind: 'array', elements: new Float32Array(6) },
      ],
    },
  ]);
  expect(
    (await c.runAndReadAll('SELECT count(*), count(id) FROM t WHERE id >= 10000 OR id IS NULL')).getRows(),
  ).toEqual([[2n, 1n]]);
  await c.run('ROLLBACK');

  // A chunk that cannot be made fails the insert; the rows before it are not inserted either.
  function* failing(): Generator<StagedChunk> {
    yield chunk(20_000, 20_010);
    throw new Error('the rows could not be read');
  }
  await expect(insertStaged(c, 't', TYPES, failing())).rejects.toThrow(/the rows could not be read/);
  expect((await c.runAndReadAll('SELECT count(*) FROM t')).getRows()).toEqual([[4148n]]);
});

test('the appender path stores the same rows as the staged one', async () => {
  await c.run('CREATE TABLE a (id BIGINT, name VARCHAR, v FLOAT[3])');
  await appendChunks(c, 'a', DuckDBDataChunk.create(TYPES), [
    chunk(0, 2048),
    chunk(2048, 2048),
    chunk(2048, 2100),
    chunk(2100, 4148),
  ]);
  const differ = await c.runAndReadAll(
    'SELECT count(*) FROM ((SELECT * FROM a EXCEPT ALL SELECT * FROM t) UNION ALL (SELECT * FROM t EXCEPT ALL SELECT * FROM a))',
  );
  expect(differ.getRows()).toEqual([[0n]]);
  expect((await c.runAndReadAll('SELECT count(*) FROM a')).getRows()).toEqual([[4148n]]);
});

test('a bulk write through insertChunks stores the same rows whichever way it takes (tensors staged, the rest appended)', async () => {
  const make = () => [chunk(0, 2048), chunk(2048, 3000)];
  await c.run('CREATE TABLE bulk_tensors (id BIGINT, name VARCHAR, v FLOAT[3])');
  await insertChunks(c, 'bulk_tensors', TYPES, 3000, make(), () => DuckDBDataChunk.create(TYPES), false);
  await c.run('CREATE TABLE bulk_rows (id BIGINT, name VARCHAR)');
  const scalars = [BIGINT, VARCHAR];
  const withoutTensors = make().map((ch) => ({ length: ch.length, columns: ch.columns.slice(0, 2) }));
  await insertChunks(c, 'bulk_rows', scalars, 3000, withoutTensors, () => DuckDBDataChunk.create(scalars), false);
  const rows = (
    await c.runAndReadAll(
      'SELECT t.id, t.name, t.v, r.name FROM bulk_tensors t JOIN bulk_rows r USING (id) ORDER BY id',
    )
  ).getRowsJson() as [string, string | null, number[], string | null][];
  expect(rows.length).toBe(3000);
  rows.forEach(([id, name, v, again], i) => {
    expect(Number(id)).toBe(i);
    expect(name).toBe(i % 5 === 0 ? null : `row ${i}`);
    expect(again).toBe(name);
    expect(v).toEqual([i, i + 0.5, -i]);
  });
});
