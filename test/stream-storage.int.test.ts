import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { changesOf } from '../framework/changes-of.js';
import type { BatchInfo } from '../framework/ingest/ingest-engine.js';
import type { Change, ColumnSchema, VersionedSchema } from '../framework/types.js';
import { encodeRow, rowEncoder } from '../framework/value-json.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { translatePgError } from '../sources/postgres/postgres-errors.js';
import { encodeKey } from '../stores/duckdb/change-log/log-keys.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { pgClient, randomName, readChangeLog, testConfig, type TestConfig } from './helpers.js';
import { afterEachApply, compareWithPostgres, inTransaction, ingestUntilCaughtUp } from './ingest-harness.js';

// The stream's inserts, and updates without an old row, are stored column-wise in typed tables
// `_stream__<schema.table>__v<version>`; every other change as JSON in `_changes`. The view
// `change_log` prints both alike. PostgreSQL is the oracle for the rebuilt state; the JSON path
// (`encodeKey`, the store's row encoder) is the oracle for the text the view prints for typed rows.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

// ---------------------------------------------------------------------------------------------
// The awkward table and its workload

/** Columns of the awkward table, in order; `op`, `key`, `_ff_seq` and `ts__json` collide with names the store uses. */
const AWKWARD_COLUMNS = [
  'id',
  'k',
  'i2',
  'i4',
  'i8',
  'num',
  'f4',
  'f8',
  'b',
  't',
  'by',
  'd',
  'ts',
  'tstz',
  'tm',
  'iv',
  'u',
  'js',
  'jb',
  'a_i8',
  'a_t',
  'mood',
  'op',
  'key',
  '_ff_seq',
  'ts__json',
] as const;

function awkwardDdl(table: string, mood: string): string {
  return `CREATE TABLE ${table} (
    id int8, k text, i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8, b bool, t text, by bytea,
    d date, ts timestamp, tstz timestamptz, tm time, iv interval, u uuid, js json, jb jsonb, a_i8 int8[], a_t text[], mood ${mood},
    "op" text, "key" text, "_ff_seq" int4, "ts__json" text,
    PRIMARY KEY (id, k))`;
}

type Param = string | Buffer | null;

/** Rows (in {@link AWKWARD_COLUMNS} order) whose values are easy to print wrong, passed as text parameters. */
const AWKWARD_ROWS: Param[][] = [
  [
    '1',
    'plain',
    '1',
    '2',
    '3',
    '12.50',
    '1.5',
    '0.1',
    'true',
    'hello',
    Buffer.from([0, 255]),
    '2024-02-29',
    '2024-01-02 03:04:05.123456',
    '2024-01-02 03:04:05.123456+05:30',
    '12:34:56.789012',
    '1 year 2 mons 3 days 04:05:06.5',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"b": 1,  "a": [1, 2.50]}',
    '{"b": 1, "a": "x"}',
    '{9007199254740993,NULL,-9223372036854775808}',
    '{"a b","c\\"d",NULL,"NULL",""}',
    'happy',
    'c',
    'k1',
    '7',
    'x',
  ],
  [
    '9007199254740993',
    'quote " back \\ slash \u0001 \u001b \u000b tab\t nl\n cr\r ff\f bs\b',
    '-32768',
    '-2147483648',
    '-9223372036854775808',
    'NaN',
    'NaN',
    'NaN',
    'false',
    'ctl \u001f \u007f \u2028 end',
    Buffer.alloc(0),
    'infinity',
    'infinity',
    'infinity',
    '24:00:00',
    '-178000000 years',
    null,
    '"str"',
    'null',
    '{}',
    '{}',
    'sad',
    '',
    '"',
    null,
    null,
  ],
  [
    '-9223372036854775808',
    'ünïcödé ✓ 😀 /slash 𝄞',
    '32767',
    '2147483647',
    '9223372036854775807',
    '123456789012345678901234567890.123456789012345678901234567890',
    'Infinity',
    '-Infinity',
    null,
    '',
    Buffer.from('deadbeef', 'hex'),
    '0044-03-15 BC',
    '0044-03-15 12:00:00 BC',
    '0044-03-15 12:00:00+00 BC',
    '00:00:00',
    '0 seconds',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '[1, 2,   3]',
    '[1, 2,   3]',
    '{{1,2},{3,4}}',
    '{"é","\\\\"}',
    'ok',
    'op',
    'key',
    '-1',
    'ts__json',
  ],
  // `\u001a` literally (a backslash and five characters).
  [
    '9007199254740991',
    '\\u001a literal backslash-u',
    '0',
    '0',
    '4611686018427387904',
    '-0.00001',
    '-0',
    '-0',
    'true',
    '\\u001a',
    Buffer.from('\\x00'),
    '5874897-12-31',
    '294276-12-31 23:59:59.999999',
    '294276-12-31 23:59:59.999999+00',
    '23:59:59.999999',
    '-1 days +02:00:00.000001',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12',
    '{"u": "\\u00e9"}',
    '{"u": "\\u00e9"}',
    '{1}',
    '{"x y"}',
    'happy',
    null,
    null,
    null,
    null,
  ],
  ['-1', '', ...new Array<Param>(24).fill(null)],
  [
    '0',
    'x',
    '1',
    '1',
    '1',
    '99999999999999999999.99',
    '3.4e38',
    '1e21',
    'false',
    '1e16',
    null,
    '1000-01-01',
    '1000-01-01 00:00:00',
    '1000-01-01 00:00:00+00',
    '00:00:00.000001',
    '00:00:00',
    '00000000-0000-0000-0000-000000000000',
    '{}',
    '{}',
    '{NULL}',
    '{NULL}',
    'sad',
    'a',
    'b',
    '0',
    '',
  ],
  [
    '4611686018427387904',
    'k7',
    '-1',
    '-1',
    '-1',
    '0',
    '1e-5',
    '5e-324',
    'true',
    't7',
    Buffer.from('k7'),
    '-infinity',
    '-infinity',
    '-infinity',
    '00:00:01',
    '1 day',
    null,
    '1',
    '1',
    '{-1}',
    '{"k7"}',
    'ok',
    'x',
    'y',
    '1',
    'z',
  ],
  [
    '5',
    '\t',
    '2',
    '2',
    '2',
    '1e-7',
    '1e-7',
    '1e16',
    'false',
    '\u00ad soft hyphen',
    Buffer.from([1, 2, 3]),
    '9999-12-31',
    '9999-12-31 23:59:59.999999',
    '1999-12-31 23:59:59.999999-08',
    '23:00:00',
    'P1Y2M3DT4H5M6.000007S',
    null,
    '[]',
    '[]',
    '{}',
    '{}',
    'sad',
    null,
    null,
    null,
    null,
  ],
  // Inserted again under row 4's key after row 4's delete.
  [
    '9007199254740991',
    '\\u001a literal backslash-u',
    '4',
    '4',
    '4',
    '4',
    '3.4028235e38',
    '1.7976931348623157e308',
    'true',
    'again',
    null,
    '2000-01-01',
    '2000-01-01 00:00:00',
    '2000-01-01 00:00:00+00',
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
  ],
];

/** One row operation of a workload, as the change log should list it. */
interface ExpectedOp {
  readonly table: string;
  readonly op: 'c' | 'u' | 'd' | 't';
  /** The key's values, as text. */
  readonly key: readonly string[];
  /** Where the change is stored. */
  readonly storage: 'typed' | 'json';
  /** Index of its transaction in the workload. */
  readonly tx: number;
}

interface Workload {
  readonly ops: ExpectedOp[];
  /** xid of each transaction. */
  readonly xids: number[];
}

/**
 * Inserts, key-unchanged updates and deletes (typed), primary-key updates (JSON) on the awkward table
 * `a`, interleaved with changes of the plain table `b` (`id int PRIMARY KEY, v text`) in the same
 * transactions; one row per statement, so the order of the changes is known.
 */
async function awkwardWorkload(a: string, b: string): Promise<Workload> {
  const qa = `public.${a}`;
  const qb = `public.${b}`;
  const ops: ExpectedOp[] = [];
  const xids: number[] = [];
  let tx = 0;
  const keyOf = (row: Param[]) => [String(row[0]), String(row[1])];
  const insertA = async (row: Param[]) => {
    const params = AWKWARD_COLUMNS.map((_, i) => `$${i + 1}`).join(', ');
    await client.query(`INSERT INTO ${a} (${AWKWARD_COLUMNS.map((c) => `"${c}"`).join(', ')}) VALUES (${params})`, row);
    ops.push({ table: qa, op: 'c', key: keyOf(row), storage: 'typed', tx });
  };
  const updateA = async (row: Param[], set: string, params: Param[] = [], newKey?: readonly string[]) => {
    const n = params.length;
    await client.query(`UPDATE ${a} SET ${set} WHERE id = $${n + 1} AND k = $${n + 2}`, [...params, row[0], row[1]]);
    ops.push({ table: qa, op: 'u', key: newKey ?? keyOf(row), storage: newKey ? 'json' : 'typed', tx });
  };
  const deleteA = async (key: readonly string[]) => {
    await client.query(`DELETE FROM ${a} WHERE id = $1 AND k = $2`, [...key]);
    ops.push({ table: qa, op: 'd', key, storage: 'typed', tx });
  };
  const b_ = async (sql: string, op: 'c' | 'u' | 'd' | 't', key: number | null, storage: 'typed' | 'json') => {
    await client.query(sql.replaceAll('%B%', b));
    ops.push({ table: qb, op, key: key === null ? [] : [String(key)], storage, tx });
  };
  const r = AWKWARD_ROWS;
  const transaction = async (body: () => Promise<void>) => {
    xids.push(await inTransaction(client, body));
    tx++;
  };

  await transaction(async () => {
    for (const row of r.slice(0, 4)) await insertA(row);
    await b_(`INSERT INTO %B% VALUES (1, 'one')`, 'c', 1, 'typed');
    for (const row of r.slice(4, 8)) await insertA(row);
    await b_(`INSERT INTO %B% VALUES (2, E'two \\\\ "2"')`, 'c', 2, 'typed');
    await b_(`INSERT INTO %B% VALUES (3, NULL)`, 'c', 3, 'typed');
  });
  await transaction(async () => {
    await updateA(r[0]!, 't = $1, f8 = 1e-7, f4 = 1e16, num = $2, tstz = $3', [r[1]![9]!, 'NaN', 'infinity']);
    await b_(`UPDATE %B% SET v = 'uno' WHERE id = 1`, 'u', 1, 'typed');
    await updateA(r[1]!, `d = '0044-03-15 BC', tstz = '1000-01-01 00:00:00+00', i8 = 9007199254740993, js = NULL`);
    await updateA(r[6]!, 'id = 7000', [], ['7000', 'k7']);
    await deleteA(keyOf(r[3]!));
    await b_(`UPDATE %B% SET id = 20 WHERE id = 2`, 'u', 20, 'json');
    await updateA(r[4]!, `t = 'five'`);
  });
  await transaction(async () => {
    const nulls = AWKWARD_COLUMNS.slice(2)
      .map((c) => `"${c}" = NULL`)
      .join(', ');
    await updateA(r[2]!, nulls);
    await updateA(r[5]!, `op = 'z', ts__json = 'y', "key" = 'kk', _ff_seq = 99, ts = '-infinity'`);
    await updateA(r[4]!, `t = 'five again', f8 = -0.0`);
    await b_(`DELETE FROM %B% WHERE id = 3`, 'd', 3, 'typed');
    await updateA(r[7]!, 'k = $1', ['new\\key "q"'], ['5', 'new\\key "q"']);
    await client.query(`UPDATE ${a} SET f8 = '-0', d = '0001-01-01 BC' WHERE id = 5`);
    ops.push({ table: qa, op: 'u', key: ['5', 'new\\key "q"'], storage: 'typed', tx });
    await deleteA(['7000', 'k7']);
    await deleteA(keyOf(r[1]!));
    await b_(`DELETE FROM %B% WHERE id = 20`, 'd', 20, 'typed');
    await b_(`INSERT INTO %B% VALUES (5, 'five', 5)`, 'c', 5, 'typed');
    await b_(`TRUNCATE %B%`, 't', null, 'json');
    await insertA(r[8]!);
  });
  await transaction(async () => {
    await updateA(r[8]!, `iv = '1 mon', a_t = '{"\\u001a"}', f8 = 42, f4 = 2`);
    await b_(`INSERT INTO %B% VALUES (4, 'four')`, 'c', 4, 'typed');
  });
  return { ops, xids };
}

/** Creates the awkward table `a` and the plain table `b`. */
async function createAwkwardTables(): Promise<{ a: string; b: string }> {
  const a = randomName('strm_awk');
  const b = randomName('strm_other');
  const mood = randomName('mood');
  await client.query(`CREATE TYPE ${mood} AS ENUM ('sad', 'ok', 'happy')`);
  await client.query(awkwardDdl(a, mood));
  // A column named like an array index: encodeRow would write it first.
  await client.query(`CREATE TABLE ${b} (id int PRIMARY KEY, v text, "1" int)`);
  return { a, b };
}

// ---------------------------------------------------------------------------------------------
// Reading the change log file

async function query<T extends unknown[]>(config: TestConfig, sql: string, params: unknown[] = []): Promise<T[]> {
  const db = await openDuckDB(config.store.config.path, { readOnly: true });
  try {
    return (await db.connection.runAndReadAll(sql, params as never)).getRows() as T[];
  } finally {
    db.close();
  }
}

/** The values of a key as change_log prints it (JSON object text), as text, in the key's order. */
function keyValues(key: string | null): string[] {
  if (key === null) return [];
  return Object.values(JSON.parse(key) as Record<string, unknown>).map(String);
}

/** Splits the text of a flat-at-the-top JSON object into its members' raw value texts. */
function members(json: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 1;
  const skipString = (p: number) => {
    p++;
    while (json[p] !== '"') p += json[p] === '\\' ? 2 : 1;
    return p + 1;
  };
  while (i < json.length - 1) {
    if (json[i] === ',') i++;
    const nameEnd = skipString(i);
    const name = JSON.parse(json.slice(i, nameEnd)) as string;
    let p = nameEnd + 1;
    const start = p;
    let depth = 0;
    while (p < json.length) {
      const ch = json[p];
      if (ch === '"') {
        p = skipString(p);
        continue;
      }
      if (ch === '[' || ch === '{') depth++;
      else if (ch === ']' || ch === '}') {
        if (depth === 0) break;
        depth--;
      } else if (ch === ',' && depth === 0) break;
      p++;
    }
    out.set(name, json.slice(start, p));
    i = p;
  }
  return out;
}

/** Checks that `seq` is unique over the whole log and follows commit order (commit LSN, then LSN). */
async function expectSeqInCommitOrder(config: TestConfig): Promise<bigint[]> {
  const rows = await query<[bigint, bigint, bigint, string]>(
    config,
    `SELECT seq, commit_lsn, lsn, op FROM change_log ORDER BY seq`,
  );
  const seqs = rows.map((r) => r[0]);
  expect(new Set(seqs.map(String)).size, 'seq is unique').toBe(seqs.length);
  for (let i = 1; i < rows.length; i++) {
    const [seq, commitLsn, lsn, op] = rows[i]!;
    const [, prevCommit, prevLsn, prevOp] = rows[i - 1]!;
    if (op === 'r' || prevOp === 'r') continue;
    const ordered = commitLsn > prevCommit || (commitLsn === prevCommit && lsn > prevLsn);
    expect(ordered, `seq ${seq} (commit ${commitLsn}, lsn ${lsn}) after (commit ${prevCommit}, lsn ${prevLsn})`).toBe(
      true,
    );
  }
  return seqs;
}

// ---------------------------------------------------------------------------------------------

describe('stream storage: typed stream tables and _changes, read through change_log', () => {
  test('awkward values through the stream: state equals PostgreSQL, typed vs JSON storage, seq in commit order', async () => {
    const { a, b } = await createAwkwardTables();
    const qa = `public.${a}`;
    const qb = `public.${b}`;
    // The same workload into two logs: batches cut at commits, and batches of 3 changes (cut mid-transaction).
    const configs = [
      testConfig([a, b], { ingest: { heartbeatSeconds: 1 } }),
      testConfig([a, b], { ingest: { heartbeatSeconds: 1, batchSize: 3 } }),
    ];
    for (const config of configs) expect((await ingestUntilCaughtUp(config)).snapshotted).toBe(true);
    const { ops, xids } = await awkwardWorkload(a, b);
    for (const config of configs) await ingestUntilCaughtUp(config);

    for (const config of configs) {
      // (a) the rebuilt state of both tables equals PostgreSQL.
      for (const table of [a, b]) {
        const { diff } = await compareWithPostgres(client, config, table);
        expect.soft(diff, `${table}, batch size ${config.ingest.batchSize}`).toEqual({ missing: [], extra: [] });
      }

      // (b) storage: typed tables under their names, listed in _stream_tables; the rest in _changes.
      const streamTables = await query<[string, number, string]>(
        config,
        'SELECT table_name, schema_version, storage FROM _stream_tables ORDER BY table_name',
      );
      expect(streamTables).toEqual(
        [
          [qa, 1, `_stream__${qa}__v1`],
          [qb, 1, `_stream__${qb}__v1`],
        ].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
      );
      for (const table of [qa, qb]) {
        const expected = ops.filter((o) => o.table === table);
        // [op, count] of the expected changes in the given storages, by op.
        const count = (...storages: string[]) =>
          (['c', 'd', 't', 'u'] as const)
            .map(
              (op) =>
                [op, expected.filter((o) => storages.includes(o.storage) && o.op === op).length] as [string, number],
            )
            .filter(([, n]) => n > 0);
        const typed = await query<[string, bigint]>(
          config,
          `SELECT chr(CAST(_ff_op AS INTEGER)), count(*) FROM "_stream__${table}__v1" GROUP BY 1 ORDER BY 1`,
        );
        expect(typed.map(([op, n]) => [op, Number(n)])).toEqual(count('typed'));
        const json = await query<[string, bigint]>(
          config,
          'SELECT op, count(*) FROM _changes WHERE table_name = $1 GROUP BY op ORDER BY op',
          [table],
        );
        expect(json.map(([op, n]) => [op, Number(n)])).toEqual(count('json'));
        const all = await query<[string, bigint]>(
          config,
          'SELECT op, count(*) FROM change_log WHERE table_name = $1 GROUP BY op ORDER BY op',
          [table],
        );
        expect(all.map(([op, n]) => [op, Number(n)])).toEqual(count('typed', 'json'));
      }

      // The typed table of `a`: meta columns (renamed around the table's own `_ff_seq`), DuckDB types, overrides.
      const types = await query<[string, string]>(
        config,
        'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [`_stream__${qa}__v1`],
      );
      expect(types).toEqual([
        ['__ff_seq', 'BIGINT'],
        ['_ff_op', 'UTINYINT'],
        ['_ff_lsn', 'UBIGINT'],
        ['_ff_commit_lsn', 'UBIGINT'],
        ['_ff_commit_time', 'TIMESTAMP WITH TIME ZONE'],
        ['_ff_xid', 'UBIGINT'],
        ['id', 'BIGINT'],
        ['k', 'VARCHAR'],
        ['i2', 'SMALLINT'],
        ['i4', 'INTEGER'],
        ['i8', 'BIGINT'],
        ['num', 'VARCHAR'],
        ['f4', 'FLOAT'],
        ['f4__json', 'VARCHAR'],
        ['f8', 'DOUBLE'],
        ['f8__json', 'VARCHAR'],
        ['b', 'BOOLEAN'],
        ['t', 'VARCHAR'],
        ['by', 'BLOB'],
        ['d', 'DATE'],
        ['d__json', 'VARCHAR'],
        ['ts', 'TIMESTAMP'],
        ['_ts__json', 'VARCHAR'],
        ['tstz', 'TIMESTAMP WITH TIME ZONE'],
        ['tstz__json', 'VARCHAR'],
        ['tm', 'TIME'],
        ['iv', 'INTERVAL'],
        ['iv__json', 'VARCHAR'],
        ['u', 'VARCHAR'],
        ['js', 'JSON'],
        ['jb', 'JSON'],
        ['a_i8', 'BIGINT[]'],
        ['a_i8__json', 'VARCHAR'],
        ['a_t', 'VARCHAR[]'],
        ['a_t__json', 'VARCHAR'],
        ['mood', 'VARCHAR'],
        ['op', 'VARCHAR'],
        ['key', 'VARCHAR'],
        ['_ff_seq', 'INTEGER'],
        ['ts__json', 'VARCHAR'],
      ]);
      // Dates and timestamps DuckDB cannot hold exactly are overrides, the others native.
      const overrides = await query<[bigint, string | null, string | null, string | null]>(
        config,
        `SELECT id, d__json, _ts__json, tstz__json FROM "_stream__${qa}__v1" WHERE _ff_op = 99 ORDER BY __ff_seq`,
      );
      expect(overrides.map(([id, ...rest]) => [String(id), ...rest])).toEqual([
        ['1', null, null, null],
        ['9007199254740993', '"infinity"', '"infinity"', '"infinity"'],
        [
          '-9223372036854775808',
          '"0044-03-15 BC"',
          '"0044-03-15T12:00:00.000000 BC"',
          '"0044-03-15T12:00:00.000000Z BC"',
        ],
        ['9007199254740991', '"5874897-12-31"', '"294276-12-31T23:59:59.999999"', '"294276-12-31T23:59:59.999999Z"'],
        ['-1', null, null, null],
        // 1000-01-01 and 9999-12-31 sit on the bounds of the native range: either layout is exact.
        expect.arrayContaining(['0']),
        ['4611686018427387904', '"-infinity"', '"-infinity"', '"-infinity"'],
        expect.arrayContaining(['5']),
        ['9007199254740991', null, null, null],
      ]);

      // (c) seq is unique and follows commit order; per table, the changes are the operations performed, in order.
      const seqs = await expectSeqInCommitOrder(config);
      expect(seqs.length).toBe(ops.length);
      const logged = await query<[bigint, string, string, string, bigint, bigint, bigint, bigint]>(
        config,
        'SELECT seq, table_name, op, key, xid, commit_lsn, epoch_us(commit_time), schema_version FROM change_log ORDER BY seq',
      );
      expect(logged.map(([, table, op, key]) => `${table} ${op} ${JSON.stringify(keyValues(key))}`)).toEqual(
        ops.map((o) => `${o.table} ${o.op} ${JSON.stringify(o.key)}`),
      );
      // Typed and JSON rows of one transaction carry its xid, commit LSN and commit time.
      logged.forEach(([seq, , , , xid, commitLsn, commitTime], i) => {
        const { tx } = ops[i]!;
        expect(Number(xid), `xid of seq ${seq}`).toBe(xids[tx]);
        const first = logged[ops.findIndex((o) => o.tx === tx)]!;
        expect([commitLsn, commitTime], `commit of seq ${seq}`).toEqual([first[5], first[6]]);
      });
      expect(new Set(logged.map((r) => r[5])).size).toBe(xids.length);
    }
  });

  // Keys must be byte-equal (they are compared as text); rows must hold equal values. The view prints
  // floats as DuckDB does (1e-05 for 0.00001, 42.0 for 42) and columns in schema order even where a
  // name looks like an array index (encodeRow's `for…in` lists those first): same values, other text.
  test('typed rows print the same key text and row values as the JSON path (every change of each applied batch, read with changesOf)', async () => {
    const { a, b } = await createAwkwardTables();
    const config = testConfig([a, b], { ingest: { heartbeatSeconds: 1 } });
    const captured: Change[] = [];
    let storedBatches = 0;
    const run = async () => {
      const container = await createContainer(config);
      try {
        const schemas = new Map<string, VersionedSchema>();
        afterEachApply(container, async (batch, log) => {
          if (batch.snapshot) return;
          // Column-wise rows (the typed tables' form) in the batch.
          if (batch.groups.length > 0) storedBatches++;
          if (schemas.size === 0)
            for (const schema of await log.schemas()) schemas.set(`${schema.table}#${schema.version}`, schema);
          for (const schema of batch.schemas) schemas.set(`${schema.table}#${schema.version}`, schema);
          captured.push(...changesOf(batch, (table, version) => schemas.get(`${table}#${version}`)));
        });
        const engine = await container.getAsync(TOKENS.IngestEngine);
        return await engine.run({ untilCaughtUp: true });
      } finally {
        await closeContainer(container);
      }
    };
    await run();
    const { ops } = await awkwardWorkload(a, b);
    await run();
    expect(storedBatches).toBeGreaterThan(0);

    const schemas = new Map<string, { columns: ColumnSchema[]; keyColumns: string[] }>(
      (
        await query<[string, number, string, string]>(
          config,
          'SELECT table_name, version, columns, key_columns FROM _schemas',
        )
      ).map(([table, version, columns, keyColumns]) => [
        `${table}#${version}`,
        { columns: JSON.parse(columns), keyColumns: JSON.parse(keyColumns) },
      ]),
    );
    const typedSeqs = new Set(
      (
        await query<[bigint]>(
          config,
          `SELECT __ff_seq FROM "_stream__public.${a}__v1" UNION ALL SELECT _ff_seq FROM "_stream__public.${b}__v1"`,
        )
      ).map(([s]) => s),
    );
    const logged = await query<[bigint, string, string, string | null, string | null, string | null, number]>(
      config,
      `SELECT seq, table_name, op, key, before, after, schema_version FROM change_log WHERE op <> 'r' ORDER BY seq`,
    );
    // Every change reached the hook, in the log's order.
    expect(captured.length).toBe(ops.length);
    expect(logged.length).toBe(ops.length);
    expect(typedSeqs.size).toBe(ops.filter((o) => o.storage === 'typed').length);

    const floatColumns = new Set(['f4', 'f8']);
    const keyMismatches: string[] = [];
    const floatMismatches: string[] = [];
    const orderMismatches: string[] = [];
    const otherMismatches: string[] = [];
    logged.forEach(([seq, table, op, key, before, after, version], i) => {
      const change = captured[i]!;
      const where = `seq ${seq} (${typedSeqs.has(seq) ? 'typed' : 'json'}) ${table} ${op}`;
      if (change.table !== table || change.op !== op || change.schemaVersion !== version) {
        otherMismatches.push(`${where}: the hook saw ${change.table} ${change.op} v${change.schemaVersion}`);
        return;
      }
      const schema = schemas.get(`${table}#${version}`)!;
      // The encoder the store uses for _changes (ChangesAppender.rowEncoderOf): encodeRow when a column
      // name is an array index (for…in would list it first), else the compiled rowEncoder.
      const encode = schema.columns.some((c) => /^(0|[1-9][0-9]*)$/.test(c.name))
        ? encodeRow
        : rowEncoder(schema.columns);
      const expectedKey = encodeKey(change.key, schema.keyColumns);
      if (key !== expectedKey) keyMismatches.push(`${where}: key ${key} ≠ ${expectedKey}`);
      const expectedBefore = change.before === null ? null : encode(change.before);
      if (before !== expectedBefore) otherMismatches.push(`${where}: before ${before} ≠ ${expectedBefore}`);
      const expectedAfter = change.after === null ? null : encode(change.after);
      if (after === expectedAfter) return;
      if (after === null || expectedAfter === null) {
        otherMismatches.push(`${where}: after ${after} ≠ ${expectedAfter}`);
        return;
      }
      const got = members(after);
      const want = members(expectedAfter);
      if ([...got.keys()].join() !== [...want.keys()].join()) {
        orderMismatches.push(`${where}: view ${after} ≠ JSON path ${expectedAfter}`);
      }
      for (const [name, text] of want) {
        const view = got.get(name);
        if (view === text) continue;
        if (
          floatColumns.has(name) &&
          view !== undefined &&
          Object.is(Number(JSON.parse(view)), Number(JSON.parse(text)))
        )
          continue;
        (floatColumns.has(name) ? floatMismatches : otherMismatches).push(
          `${where} ${name}: view ${view} ≠ JSON path ${text}`,
        );
      }
    });
    expect.soft(keyMismatches, 'keys').toEqual([]);
    expect.soft(otherMismatches, 'non-float values').toEqual([]);
    expect.soft(floatMismatches, 'float4/float8 values').toEqual([]);
    // Only the order of index-like column names may differ.
    expect(
      orderMismatches.every((m) => /"1"/.test(m)),
      orderMismatches.join('\n'),
    ).toBe(true);
  });

  test('schema changes mid-stream: each schema version gets its own stream table', async () => {
    const table = randomName('strm_schema');
    const qualified = `public.${table}`;
    await client.query(`CREATE TABLE ${table} (id int4 PRIMARY KEY, a int4, b text, c date)`);
    await client.query(`INSERT INTO ${table} VALUES (100, 1, 'snap', '2020-01-01')`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);

    // v1
    await client.query(`INSERT INTO ${table} VALUES (1, 1, 'one', '2024-01-01'), (2, 2, 'two', 'infinity')`);
    await client.query(`UPDATE ${table} SET a = 10 WHERE id = 1`);
    // v2: + d timestamptz
    await client.query(`ALTER TABLE ${table} ADD COLUMN d timestamptz`);
    await client.query(`INSERT INTO ${table} VALUES (3, 3, 'three', NULL, '2024-01-01 00:00:00+00')`);
    await client.query(`UPDATE ${table} SET d = 'infinity' WHERE id = 2`);
    await client.query(`UPDATE ${table} SET b = 'uno' WHERE id = 1`);
    // A run ends between versions: the next run appends to the same version's table, then makes new ones.
    await ingestUntilCaughtUp(config);
    await client.query(`UPDATE ${table} SET b = 'tres' WHERE id = 3`);
    // v3: - c
    await client.query(`ALTER TABLE ${table} DROP COLUMN c`);
    await client.query(`INSERT INTO ${table} VALUES (4, 4, 'four', '0044-03-15 12:00:00+00 BC')`);
    await client.query(`UPDATE ${table} SET a = 30 WHERE id = 3`);
    // v4: a becomes int8
    await client.query(`ALTER TABLE ${table} ALTER COLUMN a TYPE int8`);
    await client.query(`INSERT INTO ${table} VALUES (5, 9007199254740993, 'five', NULL)`);
    await client.query(`UPDATE ${table} SET a = -9223372036854775808 WHERE id = 1`);
    // v5: + e jsonb, inside a transaction that changed rows before it (the Relation message arrives mid-transaction).
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (6, 6, 'six', NULL)`);
    await client.query(`ALTER TABLE ${table} ADD COLUMN e jsonb`);
    await client.query(`INSERT INTO ${table} VALUES (7, 7, 'seven', NULL, '{"x": [1, "y"]}')`);
    await client.query(`UPDATE ${table} SET e = '"six"' WHERE id = 6`);
    await client.query('COMMIT');
    await client.query(`DELETE FROM ${table} WHERE id = 2`);
    await client.query(`UPDATE ${table} SET id = 60 WHERE id = 6`);
    await ingestUntilCaughtUp(config);

    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const streamTables = await query<[number, string]>(
      config,
      'SELECT schema_version, storage FROM _stream_tables WHERE table_name = $1 ORDER BY schema_version',
      [qualified],
    );
    expect(streamTables).toEqual([1, 2, 3, 4, 5].map((v) => [v, `_stream__${qualified}__v${v}`]));
    const perVersion: Record<number, string[]> = {
      1: ['c', 'c', 'u'],
      2: ['c', 'u', 'u', 'u'],
      3: ['c', 'u'],
      4: ['c', 'u', 'c'],
      5: ['c', 'u', 'd'],
    };
    for (const [version, storage] of streamTables) {
      const rows = await query<[string]>(
        config,
        `SELECT chr(CAST(_ff_op AS INTEGER)) FROM "${storage}" ORDER BY _ff_seq`,
      );
      expect(
        rows.map(([op]) => op),
        storage,
      ).toEqual(perVersion[version]);
      const columns = (
        await query<[string, string]>(
          config,
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 AND NOT starts_with(column_name, '_ff_') ORDER BY ordinal_position`,
          [storage],
        )
      ).map(([c, t]) => `${c}:${t}`);
      expect(columns, storage).toEqual(
        {
          1: ['id:INTEGER', 'a:INTEGER', 'b:VARCHAR', 'c:DATE', 'c__json:VARCHAR'],
          2: [
            'id:INTEGER',
            'a:INTEGER',
            'b:VARCHAR',
            'c:DATE',
            'c__json:VARCHAR',
            'd:TIMESTAMP WITH TIME ZONE',
            'd__json:VARCHAR',
          ],
          3: ['id:INTEGER', 'a:INTEGER', 'b:VARCHAR', 'd:TIMESTAMP WITH TIME ZONE', 'd__json:VARCHAR'],
          4: ['id:INTEGER', 'a:BIGINT', 'b:VARCHAR', 'd:TIMESTAMP WITH TIME ZONE', 'd__json:VARCHAR'],
          5: ['id:INTEGER', 'a:BIGINT', 'b:VARCHAR', 'd:TIMESTAMP WITH TIME ZONE', 'd__json:VARCHAR', 'e:JSON'],
        }[version],
      );
    }
    // change_log gives each row the version it was written in; the JSON path holds the delete and the key move.
    const versions = await query<[string, number, bigint]>(
      config,
      `SELECT op, schema_version, count(*) FROM change_log WHERE table_name = $1 GROUP BY ALL ORDER BY ALL`,
      [qualified],
    );
    expect(versions.map(([op, v, n]) => `${op}${v}:${n}`)).toEqual([
      'c1:2',
      'c2:1',
      'c3:1',
      'c4:2',
      'c5:1',
      'd5:1',
      'r1:1',
      'u1:1',
      'u2:3',
      'u3:1',
      'u4:1',
      'u5:2',
    ]);
    await expectSeqInCommitOrder(config);
  });

  test('unchanged TOASTed values after typed rows in the same batch are filled from the typed table', async () => {
    const table = randomName('strm_toast');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL, big text)`);
    await client.query(`ALTER TABLE ${table} ALTER COLUMN big SET STORAGE EXTERNAL`);
    // 64 kB, stored out of line uncompressed: an update that leaves it alone sends 'u' for it.
    const BIG = `repeat(md5(random()::text), 2000)`;
    const configs = [
      testConfig([table], { ingest: { heartbeatSeconds: 1 } }),
      testConfig([table], { ingest: { heartbeatSeconds: 1, batchSize: 2 } }),
    ];
    for (const config of configs) await ingestUntilCaughtUp(config);

    // Inserted and updated in one transaction; updated again in the next ones.
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (1, 0, ${BIG})`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
    await client.query('COMMIT');
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
    await client.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`);
    // The big value changes (typed, full value), then an update leaves it: the newer typed row is the one to fill from.
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (3, 0, ${BIG})`);
    await client.query(`UPDATE ${table} SET big = ${BIG} WHERE id = 3`);
    await client.query(`UPDATE ${table} SET n = 5 WHERE id = 3`);
    await client.query('COMMIT');
    // Other rows in the batch before the fill, and a key move (JSON) then an update (filled from the JSON row).
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (4, 0, ${BIG}), (5, 0, 'small')`);
    await client.query(`UPDATE ${table} SET id = 40 WHERE id = 4`);
    await client.query(`UPDATE ${table} SET n = 1 WHERE id = 40`);
    await client.query(`UPDATE ${table} SET n = 1 WHERE id = 5`);
    await client.query('COMMIT');
    await client.query(`UPDATE ${table} SET n = 2 WHERE id IN (1, 3, 40)`);
    const truth = new Map(
      (await client.query(`SELECT id, big FROM ${table}`)).rows.map((r) => [r.id as number, r.big as string]),
    );
    expect(
      (await client.query(`SELECT pg_column_size(big) AS s FROM ${table} WHERE id = 1`)).rows[0].s,
    ).toBeGreaterThan(60_000);

    for (const config of configs) {
      const batches: BatchInfo[] = [];
      await ingestUntilCaughtUp(config, { onBatch: (b) => void batches.push(b) });
      const { diff, changes } = await compareWithPostgres(client, config, table);
      expect(diff, `batch size ${config.ingest.batchSize}`).toEqual({ missing: [], extra: [] });
      const updates = changes.filter((c) => c.op === 'u');
      expect(updates).toHaveLength(11);
      for (const c of updates) {
        const id = c.after!.id as number;
        const big = c.after!.big as string | null;
        expect(big?.length, `big of id ${id} at seq ${c.seq}`).toBe(truth.get(id)!.length);
        expect(big === truth.get(id)!, `big of id ${id} at seq ${c.seq}`).toBe(true);
      }
      // The updates that left the value alone went to _changes (filled), the others to the typed table.
      const stored = await query<[string, bigint]>(
        config,
        `SELECT 'json ' || op, count(*) FROM _changes GROUP BY op UNION ALL SELECT 'typed ' || chr(CAST(_ff_op AS INTEGER)), count(*) FROM "_stream__public.${table}__v1" GROUP BY _ff_op ORDER BY 1`,
      );
      expect(stored.map(([k, n]) => `${k}:${n}`)).toEqual(['json u:9', 'typed c:4', 'typed u:2']);
      // A batch was cut before the first fill, mid-transaction.
      expect(batches.some((b) => !b.snapshot && !b.complete)).toBe(true);
      await expectSeqInCommitOrder(config);
    }
  });

  test('restarts: each run continues the same stream table, seq stays unique and in commit order', async () => {
    const table = randomName('strm_restart');
    await client.query(`CREATE TABLE ${table} (id int8 PRIMARY KEY, t text, f8 float8, ts timestamptz, n int)`);
    await client.query(
      `INSERT INTO ${table} VALUES (1, 'a', 0.5, '2024-01-01 00:00:00+00', 1), (2, E'b\\n', 'NaN', 'infinity', 2), (3, 'c', -0, NULL, 3),
                                   (9007199254740993, 'big', 1e-7, '0044-03-15 00:00:00+00 BC', 4)`,
    );
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    expect((await ingestUntilCaughtUp(config)).snapshotted).toBe(true);
    let typed = 0;
    let json = 0;

    const rounds: string[][] = [
      [
        `INSERT INTO ${table} VALUES (6, 'six', 6, '2024-06-06 06:06:06+00', 6)`,
        `INSERT INTO ${table} VALUES (7, 'seven', 7, NULL, 7)`,
        `UPDATE ${table} SET n = 10, ts = '-infinity' WHERE id = 1`,
        `DELETE FROM ${table} WHERE id = 2`,
        `UPDATE ${table} SET id = 30 WHERE id = 3`,
      ],
      [
        `INSERT INTO ${table} VALUES (8, 'eight', 8, NULL, 8)`,
        `UPDATE ${table} SET n = 66 WHERE id = 6`,
        `DELETE FROM ${table} WHERE id = 7`,
        `UPDATE ${table} SET t = 'big!' WHERE id = 9007199254740993`,
      ],
      [
        `INSERT INTO ${table} VALUES (2, 'two again', 2, NULL, 2)`,
        `UPDATE ${table} SET n = 88 WHERE id = 8`,
        `DELETE FROM ${table} WHERE id = 30`,
      ],
    ];
    for (const round of rounds) {
      for (const sql of round) await client.query(sql);
      // Primary-key updates go to _changes, every other change to the typed table.
      const typedHere = round.filter((s) => !s.includes('SET id')).length;
      typed += typedHere;
      json += round.length - typedHere;
      const result = await ingestUntilCaughtUp(config);
      expect(result.snapshotted).toBe(false);
      expect(result.changesApplied).toBe(round.length);
      const seqs = await expectSeqInCommitOrder(config);
      expect(seqs.length).toBe(4 + typed + json);
      const { diff } = await compareWithPostgres(client, config, table);
      expect(diff).toEqual({ missing: [], extra: [] });
    }
    expect(await query(config, 'SELECT schema_version, storage FROM _stream_tables')).toEqual([
      [1, `_stream__public.${table}__v1`],
    ]);
    const [[typedRows]] = await query<[bigint]>(config, `SELECT count(*) FROM "_stream__public.${table}__v1"`);
    const [[jsonRows]] = await query<[bigint]>(config, 'SELECT count(*) FROM _changes');
    expect([Number(typedRows), Number(jsonRows)]).toEqual([typed, json]);
    // Snapshot rows come first, then every stream change in commit order.
    const ops = await query<[string]>(config, 'SELECT op FROM change_log ORDER BY seq LIMIT 4');
    expect(ops.map(([op]) => op)).toEqual(['r', 'r', 'r', 'r']);
  });

  test("the log's last commit time counts typed stream rows (it seeds the next run's minimum commit time)", async () => {
    const table = randomName('strm_time');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES (1, 'x')`);
    await client.query(`UPDATE ${table} SET v = 'y' WHERE id = 1`);
    await ingestUntilCaughtUp(config);
    const [[newest]] = await query<[bigint]>(
      config,
      `SELECT epoch_us(max(commit_time)) FROM change_log WHERE op <> 'r'`,
    );
    // The store's read-only inspection (what `featureflow status` reads).
    expect((await config.store.inspect()).state.lastCommitTime).toBe(BigInt(newest));
  });

  test('float -0 and 0 keep their sign in typed stream rows whatever their neighbours', async () => {
    // PostgreSQL's float equality (and so the EXCEPT of diffAgainstPostgres) does not tell -0 from 0:
    // check the decoded values' signs directly.
    const table = randomName('strm_negzero');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, f8 float8, f4 float4)`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    const values = ['0', '-0', '-0', '0', '5', '-0', '0'];
    await client.query(`INSERT INTO ${table} VALUES ${values.map((v, i) => `(${i + 1}, '${v}', '${v}')`).join(', ')}`);
    await ingestUntilCaughtUp(config);
    const { changes } = await readChangeLog(config.store.config.path);
    const signs = (column: string) =>
      changes.map((c) => {
        const v = c.after![column] as number;
        return Object.is(v, -0) ? '-0' : String(v);
      });
    expect.soft(signs('f8'), 'float8').toEqual(values);
    expect.soft(signs('f4'), 'float4').toEqual(values);
  });

  test('REPLICA IDENTITY FULL: deletes (typed) and updates (JSON) find typed inserts by their key text, every column in the key', async () => {
    const table = randomName('strm_full');
    await client.query(
      `CREATE TABLE ${table} (n int, t text, big int8, f8 float8, f4 float4, ts timestamptz, d date, u uuid, num numeric, b bool, iv interval, by bytea)`,
    );
    await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table} VALUES
      (1, 'plain', 9007199254740993, 0.1, 1, '2024-01-01 00:00:00.5+00', '1999-12-31', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.50, true, '1 day', '\\x00'),
      (2, E'quote " back \\\\ slash \\u0001 \\u001b \\u000b tab\\t nl\\n', -9007199254740993, 1e-5, 1e21, 'infinity', 'infinity', NULL, 'NaN', false, NULL, NULL),
      (3, 'ünïcödé ✓ 😀 /slash', 9007199254740991, '-0', 'NaN', '0044-03-15 12:00:00+00 BC', '0044-03-15 BC', NULL, -0.01, NULL, '-1 mons', ''),
      (4, '\\u001a literal backslash-u', 4611686018427387904, 'Infinity', '-0', '294276-12-31 23:59:59.999999+00', '5874897-12-31', NULL, 0, true, NULL, NULL),
      (5, '', 0, 5e-324, -1.5, '1000-01-01 00:00:00+00', '1000-01-01', NULL, 99999999999999999999.99, false, NULL, NULL),
      (6, 'x', 1, 1e16, 3.4e38, '9999-12-31 23:59:59.999999+00', '9999-12-31', NULL, 1, NULL, NULL, NULL)`);
    await client.query(`DELETE FROM ${table} WHERE n IN (1, 2, 3)`);
    await client.query(`UPDATE ${table} SET n = n + 10 WHERE n IN (4, 5)`);
    await client.query(`DELETE FROM ${table} WHERE n = 14`);
    await ingestUntilCaughtUp(config);
    const { diff, changes, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(2);
    // The keys of the deletes and of the updates' old rows are the typed inserts' keys, as text.
    const inserted = new Set(changes.filter((c) => c.op === 'c').map((c) => c.key));
    expect(inserted.size).toBe(6);
    const rows = await query<[string, string]>(config, `SELECT op, key FROM change_log WHERE op = 'd' ORDER BY seq`);
    expect(rows).toHaveLength(4);
    for (const [, key] of rows.slice(0, 3)) expect(inserted.has(key), key).toBe(true);
    // The deletes are typed rows, their old row (every column) printed as the key is.
    const [[typedDeletes]] = await query<[bigint]>(
      config,
      `SELECT count(*) FROM "_stream__public.${table}__v1" WHERE _ff_op = ${'d'.charCodeAt(0)}`,
    );
    expect(Number(typedDeletes)).toBe(4);
    for (const c of changes.filter((c) => c.op === 'd'))
      expect(Object.keys(c.before!)).toEqual(Object.keys(JSON.parse(c.key!)));
  });

  test('a batch of typed rows larger than a DuckDB chunk: nulls and overrides stay on their rows', async () => {
    const table = randomName('strm_chunks');
    const domain = randomName('tsdom');
    await client.query(`CREATE DOMAIN ${domain} AS timestamptz`);
    await client.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, i2 int2, o oid, vc varchar(10), ch char(5), nm name, d date, ts timestamp, tz ${domain},
                              f4 float4, t text, a int4[], num numeric, b bool)`,
    );
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    await client.query(`INSERT INTO ${table}
      SELECT g, (g % 30000)::int2, g::oid, CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || g END, 'c' || (g % 100), 'n' || g,
             CASE WHEN g % 1000 = 0 THEN 'infinity'::date WHEN g % 1500 = 1 THEN '0044-03-15 BC'::date ELSE '2000-01-01'::date + g END,
             CASE WHEN g % 1001 = 0 THEN '-infinity'::timestamp WHEN g % 2049 = 0 THEN NULL ELSE '2000-01-01'::timestamp + g * interval '1 minute' END,
             CASE WHEN g % 999 = 0 THEN '294276-12-31 23:59:59.999999+00'::timestamptz ELSE '2000-01-01 00:00:00+00'::timestamptz + g * interval '1 second' END,
             CASE WHEN g % 11 = 0 THEN NULL ELSE g / 7.0 END,
             CASE WHEN g % 13 = 0 THEN NULL WHEN g % 17 = 0 THEN E'tab\\there "' || g ELSE repeat('x', g % 50) END,
             CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY[g, NULL, -g] END,
             CASE WHEN g % 3 = 0 THEN 'NaN'::numeric ELSE g / 3.0 END,
             CASE WHEN g % 2 = 0 THEN NULL ELSE g % 4 = 1 END
        FROM generate_series(1, 5000) g`);
    await client.query(`UPDATE ${table} SET t = NULL, d = 'infinity', tz = NULL WHERE id % 3 = 0`);
    await client.query(`DELETE FROM ${table} WHERE id % 10 = 9`);
    const result = await ingestUntilCaughtUp(config);
    expect(result.changesApplied).toBe(5000 + 1666 + 500);
    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const [[typedRows]] = await query<[bigint]>(config, `SELECT count(*) FROM "_stream__public.${table}__v1"`);
    expect(Number(typedRows)).toBe(5000 + 1666 + 500);
    await expectSeqInCommitOrder(config);
  });

  test('a failure mid-transaction after its stream table was created: rolled back, received again, stored once', async () => {
    const table = randomName('strm_retry');
    await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, t text, ts timestamptz)`);
    const config = testConfig([table], { ingest: { heartbeatSeconds: 1, batchSize: 50, maxBackoffSeconds: 1 } });
    await ingestUntilCaughtUp(config);
    // The table's first stream changes: its stream table is created in the transaction that fails.
    await client.query(
      `INSERT INTO ${table} SELECT g, 't' || g, CASE WHEN g % 7 = 0 THEN 'infinity' ELSE now() END FROM generate_series(1, 400) g`,
    );
    await client.query(`UPDATE ${table} SET t = 'u' WHERE id <= 10`);
    await client.query(`DELETE FROM ${table} WHERE id > 390`);
    let incomplete = 0;
    let failed = 0;
    const container = await createContainer(config);
    try {
      afterEachApply(container, (batch) => {
        if (batch.snapshot || batch.complete) return;
        // A connection-level failure (retriable, as the source reports it) in the transaction's third batch.
        if (++incomplete === 3 && failed++ === 0) {
          throw translatePgError(
            Object.assign(new Error('injected connection reset'), { code: 'ECONNRESET' }),
            'the test',
          );
        }
      });
      const engine = await container.getAsync(TOKENS.IngestEngine);
      await engine.run({ untilCaughtUp: true });
    } finally {
      await closeContainer(container);
    }
    expect(failed).toBe(1);
    // Received again from the start of the transaction (7 incomplete batches of 400 changes, 2 before the failure).
    expect(incomplete).toBe(3 + 7);
    const { diff } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    const seqs = await expectSeqInCommitOrder(config);
    expect(seqs).toHaveLength(420);
    expect(await query(config, 'SELECT table_name, schema_version FROM _stream_tables')).toEqual([
      [`public.${table}`, 1],
    ]);
    const [[typedRows]] = await query<[bigint]>(config, `SELECT count(*) FROM "_stream__public.${table}__v1"`);
    expect(Number(typedRows)).toBe(420);
  });
});
