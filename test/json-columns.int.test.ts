import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { entity, featureView, text } from '../framework/features/index.js';
import type { Row } from '../framework/types.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { snapshotStorageName, streamStorageName } from '../stores/duckdb/change-log/typed-layout.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { rowsOf } from './features-helpers.js';
import { duckdbColumnTypes, pgClient, randomName, testConfig, type TestConfig } from './helpers.js';
import { compareWithPostgres } from './ingest-harness.js';

// json and jsonb are stored in DuckDB JSON columns. PostgreSQL is the oracle for their text: json
// keeps what was written (whitespace, key order, duplicate keys, escapes), jsonb is PostgreSQL's
// normalised form; both must come back exactly, from the snapshot and from the stream.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

/** 200 levels of arrays and objects, alternating. */
const DEEP = `${'[{"d":'.repeat(100)}"bottom"${'}]'.repeat(100)}`;

/** Odd json documents; `jsonb: false` where jsonb refuses the text (a NUL or lone surrogate escape). */
const DOCUMENTS: readonly { readonly json: string; readonly jsonb: boolean }[] = [
  { json: ' \t{\n "a" :\r\n 1 ,"b":[ ] }\n ', jsonb: true },
  { json: '{"b": 1, "a": 2, "b": {"z": 3, "b": 4}}', jsonb: true },
  { json: '"\\u00e9 é \\ud83d\\ude00 😀 \\" \\\\ \\/ \\b\\f\\n\\r\\t \\u001f"', jsonb: true },
  { json: '"nul \\u0000 escaped"', jsonb: false },
  { json: '"\\ud800 lone surrogate"', jsonb: false },
  {
    json: '[123456789012345678901234567890.123456789e99, -0.0, 1E+2, 1e-400, 0.1000, -0, 9007199254740993]',
    jsonb: true,
  },
  { json: DEEP, jsonb: true },
  { json: '{"": "", "x": {}, "y": [], "z": [[], {}]}', jsonb: true },
  { json: 'null', jsonb: true },
  { json: '  true', jsonb: true },
  { json: '-12.50e-3 ', jsonb: true },
];

async function createTable(table: string): Promise<void> {
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, js json, jb jsonb, a_js json[], a_jb jsonb[])`);
}

/** Inserts every document at ids `first`, `first + 1`, … (jsonb NULL where jsonb refuses the text). */
async function insertDocuments(table: string, first: number): Promise<void> {
  for (const [i, { json, jsonb }] of DOCUMENTS.entries()) {
    await client.query(
      `INSERT INTO ${table} VALUES ($1, $2::json, $3::jsonb, ARRAY[$2::json, NULL, 'null'::json], ARRAY[$3::jsonb, '{}'])`,
      [first + i, json, jsonb ? json : null],
    );
  }
}

/** PostgreSQL's text of every json value, by id: the oracle. */
async function pgTexts(table: string): Promise<Map<number, Row>> {
  const { rows } = await client.query(
    `SELECT id, js::text AS js, jb::text AS jb,
            ARRAY(SELECT e::text FROM unnest(a_js) e) AS a_js, ARRAY(SELECT e::text FROM unnest(a_jb) e) AS a_jb
       FROM ${table}`,
  );
  return new Map(rows.map((r) => [r.id as number, { js: r.js, jb: r.jb, a_js: r.a_js, a_jb: r.a_jb }]));
}

const documents = entity({ name: 'document', keys: ['id'] });

/** A view serving the documents' text as text features. */
function documentView(table: string) {
  return featureView({
    name: 'documents',
    version: 1,
    entity: documents,
    source: table,
    features: { js: text, jb: text },
    transform: (row) => ({ js: row.js as string | null, jb: row.jb as string | null }),
  });
}

async function ingest(config: TestConfig): Promise<Record<string, unknown>[]> {
  const container = await createContainer(config);
  try {
    await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    return rowsOf(await (await container.getAsync(TOKENS.OfflineStore)).latest('documents'));
  } finally {
    await closeContainer(container);
  }
}

/** A table of every document (ids 1…), snapshotted with the documents view. */
async function snapshotDocuments(prefix: string) {
  const table = randomName(prefix);
  await createTable(table);
  await insertDocuments(table, 1);
  const config = testConfig([table], { ingest: { heartbeatSeconds: 1 }, features: { views: [documentView(table)] } });
  await ingest(config);
  return { table, qualified: `public.${table}`, config };
}

/**
 * Checks that the change log's rows equal PostgreSQL's and each json value is PostgreSQL's text;
 * returns PostgreSQL's texts and the logged rows, by id.
 */
async function expectPostgresTexts(config: TestConfig, table: string) {
  const { diff, state } = await compareWithPostgres(client, config, table);
  expect(diff).toEqual({ missing: [], extra: [] });
  const oracle = await pgTexts(table);
  const logged = new Map([...state.values()].map(({ id, ...values }) => [id as number, values]));
  expect(logged.size).toBe(oracle.size);
  for (const [id, want] of oracle) expect(logged.get(id), `row ${id}`).toEqual(want);
  return { oracle, logged };
}

describe('json and jsonb in DuckDB JSON columns', () => {
  test('odd json (whitespace, duplicate keys, escapes, big numbers, deep nesting) comes back as PostgreSQL wrote it, from snapshot and stream', async () => {
    const { table, qualified, config } = await snapshotDocuments('json_docs');

    // The stream: the same documents again, and updates swapping documents between rows.
    await insertDocuments(table, 101);
    await client.query(
      `UPDATE ${table} t SET (js, jb, a_js, a_jb) = (SELECT js, jb, a_js, a_jb FROM ${table} WHERE id = 2) WHERE t.id IN (1, 103)`,
    );
    await client.query(`UPDATE ${table} SET js = '  [ "updated" ,1 ]' WHERE id = 105`);
    const latest = await ingest(config);

    const { oracle, logged } = await expectPostgresTexts(config, table);
    // PostgreSQL's json text is what was written: documents no update touched, snapshot and stream.
    for (const [i, { json }] of DOCUMENTS.entries()) {
      if (i >= 2) expect(logged.get(1 + i)!.js).toBe(json);
      if (i !== 2 && i !== 4) expect(logged.get(101 + i)!.js).toBe(json);
    }
    // Feature values (latest) are the same texts.
    const byId = new Map(latest.map((r) => [r.id as number, r]));
    expect(byId.size).toBe(oracle.size);
    for (const [id, want] of oracle)
      expect([byId.get(id)!.js, byId.get(id)!.jb], `row ${id}`).toEqual([want.js, want.jb]);

    // DuckDB JSON columns that DuckDB's JSON functions read.
    const db = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      for (const storage of [snapshotStorageName(qualified), streamStorageName(qualified, 1)]) {
        const types = await duckdbColumnTypes(db.connection, storage);
        expect([types.get('js'), types.get('jb'), types.get('a_js'), types.get('a_jb')]).toEqual([
          'JSON',
          'JSON',
          'JSON[]',
          'JSON[]',
        ]);
        const extracted = (
          await db.connection.runAndReadAll(
            `SELECT json_extract(js, '$.a'), json_extract_string(jb, '$.b'), json_type(a_js[1]), js->>'$.b'
               FROM "${storage}" WHERE id IN (2, 102)`,
          )
        ).getRows();
        expect(extracted).toEqual([['2', '{"b":4,"z":3}', 'OBJECT', '1']]);
      }
    } finally {
      db.close();
    }
  });

  test('a change log written when json was stored as VARCHAR opens as it is, and ingests on into it', async () => {
    const { table, qualified, config } = await snapshotDocuments('json_old');
    await insertDocuments(table, 101);
    await ingest(config);
    const storages = [snapshotStorageName(qualified), streamStorageName(qualified, 1)];
    const db = await openDuckDB(config.store.config.path);
    try {
      // The earlier layout: the same text in VARCHAR columns.
      for (const storage of storages)
        for (const [column, type] of [
          ['js', 'VARCHAR'],
          ['jb', 'VARCHAR'],
          ['a_js', 'VARCHAR[]'],
          ['a_jb', 'VARCHAR[]'],
        ])
          await db.connection.run(`ALTER TABLE "${storage}" ALTER COLUMN ${column} TYPE ${type}`);
    } finally {
      db.close();
    }

    await insertDocuments(table, 201);
    await client.query(
      `UPDATE ${table} SET js = ' {"again" : [ 1 ]}', jb = '{"again": [1]}' WHERE id IN (1, 101, 201)`,
    );
    await client.query(`DELETE FROM ${table} WHERE id IN (2, 102)`);
    const latest = await ingest(config);

    const { oracle } = await expectPostgresTexts(config, table);
    expect(new Map(latest.map((r) => [r.id as number, r.js]))).toEqual(
      new Map([...oracle].map(([id, row]) => [id, row.js])),
    );
    const reopened = await openDuckDB(config.store.config.path, { readOnly: true });
    try {
      expect((await duckdbColumnTypes(reopened.connection, storages[1]!)).get('js')).toBe('VARCHAR');
    } finally {
      reopened.close();
    }
  });

  test('a jsonb key: updates leaving a TOASTed value unchanged find their row in the JSON column, snapshot and stream', async () => {
    const table = randomName('json_keys');
    await client.query(`CREATE TABLE ${table} (k jsonb PRIMARY KEY, n int, big text)`);
    const big = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300))`;
    const fill = (from: number, to: number) =>
      client.query(
        `INSERT INTO ${table} SELECT jsonb_build_object('id', g, 'tags', jsonb_build_array('x', g % 3), 's', repeat('é', g % 4)), g, ${big}
           FROM generate_series(${from}, ${to}) g`,
      );
    await fill(1, 30);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    const container = await createContainer(config);
    await (await container.getAsync(TOKENS.IngestEngine))
      .run({ untilCaughtUp: true })
      .finally(() => closeContainer(container));
    await fill(31, 60);
    await client.query(`UPDATE ${table} SET n = -n WHERE n % 2 = 0`);
    await client.query(`UPDATE ${table} SET n = n * 10 WHERE n % 3 = 0`);
    await client.query(`DELETE FROM ${table} WHERE n % 5 = 0`);
    const again = await createContainer(config);
    await (await again.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true }).finally(() => closeContainer(again));
    const { diff, state, changes } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    // 60 rows; every third, multiplied by 10, and the other multiples of 5 deleted.
    expect(state.size).toBe(32);
    const updates = changes.filter((c) => c.op === 'u');
    expect(updates.length).toBe(50);
    for (const u of updates) expect((u.after!.big as string).length).toBe(9600);
  });
});
