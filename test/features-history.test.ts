import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromArrays, tableFromIPC } from 'apache-arrow';
import { afterEach, describe, expect, test } from 'vitest';
import { entity, featureService, featureView, float64, int32, tensor, text } from '../framework/features/index.js';
import type { DuckDBChangeLog } from '../stores/duckdb/duckdb-change-log.js';
import { DuckDBOfflineStore, openOfflineStore } from '../stores/duckdb/offline/duckdb-offline-store.js';
import { ITEMS, T0, batchOf, openLogWithFeatures, prng, randomHistory, rowsOf, stateAt } from './features-helpers.js';

const item = entity({ name: 'item', keys: ['id'] });
const doubled = (version: number) =>
  featureView({
    name: 'items_doubled',
    version,
    entity: item,
    source: 'items',
    features: { doubled: float64, name: text },
    transform: (row) => ({ doubled: (row.value as number) * 2, name: row.name as string | null }),
  });
const plain = featureView({
  name: 'items_plain',
  version: 1,
  entity: item,
  source: 'items',
  features: { value: float64 },
  ttl: '3s',
});

const logs: DuckDBChangeLog[] = [];
const stores: Pick<DuckDBOfflineStore, 'close'>[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) store.close();
  for (const log of logs.splice(0)) await log.close();
});

async function history(r: (sql: string) => Promise<unknown[][]>, table: string) {
  return r(`SELECT id, epoch_us(valid_from), epoch_us(valid_to), deleted FROM "${table}" ORDER BY id, valid_from`);
}

describe('versioned history tables against a brute-force oracle', () => {
  for (const seed of [1, 2, 3]) {
    test(`random history ${seed}: point-in-time join, as-of, latest and history intervals`, async () => {
      const h = randomHistory(seed, { keys: 40, transactions: 300, truncates: true });
      const { log, apply } = await openLogWithFeatures({ views: [doubled(1), plain] });
      logs.push(log);
      for (const batch of h.batches) await apply(batch);
      const store = new DuckDBOfflineStore(log.connection);
      const read = async (sql: string) => (await log.connection.runAndReadAll(sql)).getRows();

      // Every entity's versions tile time: each closes where the next opens, one open row per entity, no empty interval.
      const rows = (await history(read, 'fv_items_doubled_v1')) as [number, bigint, bigint | null, boolean][];
      for (let i = 0; i < rows.length; i++) {
        const [id, from, to] = rows[i]!;
        const next = rows[i + 1];
        if (next && next[0] === id) expect(to).toBe(next[1]);
        else expect(to).toBeNull();
        if (to !== null) expect(BigInt(to) > BigInt(from)).toBe(true);
      }
      // The append-only base table under the view holds exactly those rows: a version superseded
      // within its instant was removed, so (key, valid_from) is unique there too.
      expect(await read('SELECT count(*), count(DISTINCT (id, valid_from)) FROM fv_items_doubled_v1__rows')).toEqual([
        [BigInt(rows.length), BigInt(rows.length)],
      ]);

      // Point-in-time join: every spine row equals the oracle (the table's state at t).
      const rand = prng(seed * 7);
      const last = h.times[h.times.length - 1]!;
      const spine = Array.from({ length: 400 }, (_, i) => {
        const t =
          i % 3 === 0
            ? h.times[Math.floor(rand() * h.times.length)]!
            : T0 - 1_000_000n + BigInt(Math.floor(rand() * Number(last - T0 + 3_000_000n)));
        return { id: 1 + Math.floor(rand() * 45), event_timestamp: t, label: i };
      });
      const set = rowsOf(await store.trainingSet({ spine, features: [doubled(1), plain] }));
      expect(set.map((r) => r.label)).toEqual(spine.map((s) => BigInt(s.label)));
      for (let i = 0; i < spine.length; i++) {
        const { id, event_timestamp: t } = spine[i]!;
        const state = stateAt(h.changes, t).get(id);
        const fresh = state && state.time >= t - 3_000_000n;
        expect({ i, doubled: set[i]!.doubled, name: set[i]!.name, value: set[i]!.value }).toEqual({
          i,
          doubled: state ? (state.row.value as number) * 2 : null,
          name: state ? state.row.name : null,
          value: fresh ? state!.row.value : null,
        });
      }

      // The spine meets every case: present, absent or deleted, and stale under the ttl.
      expect(set.filter((r) => r.doubled !== null).length).toBeGreaterThan(100);
      expect(set.filter((r) => r.doubled === null).length).toBeGreaterThan(50);
      expect(set.filter((r) => r.doubled !== null && r.value === null).length).toBeGreaterThan(20);
      expect(rows.filter((r) => r[3]).length).toBeGreaterThan(20);

      // As of T equals replaying the changes up to T.
      for (const t of [T0 - 1n, T0, h.times[50]!, h.times[51]! + 1n, h.times[200]!, last]) {
        const asOf = rowsOf(await store.asOf('items_doubled', t)).map((r) => [r.id, r.doubled, r.name]);
        const expected = [...stateAt(h.changes, t).values()].sort(
          (a, b) => (a.row.id as number) - (b.row.id as number),
        );
        expect(asOf).toEqual(expected.map((s) => [s.row.id, (s.row.value as number) * 2, s.row.name]));
      }
      const latest = rowsOf(await store.latest('items_doubled')).map((r) => r.id);
      expect(latest).toEqual([...stateAt(h.changes, last).keys()].sort((a, b) => a - b));
    });
  }
});

describe('filters', () => {
  test('an entity is in a filtered view while its row matches: it leaves like a delete and comes back', async () => {
    const big = featureView({
      name: 'big',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      filter: (row) => (row.value as number) > 50,
    });
    const h = randomHistory(21, { keys: 30, transactions: 200 });
    const { log, apply } = await openLogWithFeatures({ views: [big] });
    logs.push(log);
    for (const batch of h.batches) await apply(batch);
    const store = new DuckDBOfflineStore(log.connection);
    for (const t of [h.times[40]!, h.times[120]!, h.times[h.times.length - 1]!]) {
      const expected = [...stateAt(h.changes, t).values()]
        .filter((s) => (s.row.value as number) > 50)
        .map((s) => [s.row.id, s.row.value]);
      expect(rowsOf(await store.asOf('big', t)).map((r) => [r.id, r.value])).toEqual(
        expected.sort((a, b) => (a[0] as number) - (b[0] as number)),
      );
    }
  });
});

describe('rebuilding a view version from the change log', () => {
  test('two views applied live equal their new versions built from the change log, row for row', async () => {
    const h = randomHistory(11, { keys: 60, transactions: 500, truncates: true });
    const first = await openLogWithFeatures({ views: [doubled(1), plain] });
    for (const batch of h.batches) await first.apply(batch);
    await first.log.close();

    const plain2 = featureView({ ...plain, version: 2, ttl: '3s' });
    const again = await openLogWithFeatures({ views: [doubled(1), doubled(2), plain, plain2] }, first.path);
    logs.push(again.log);
    const c = again.log.connection;
    const diff = async (a: string, b: string, columns: string) =>
      (
        await c.runAndReadAll(
          `SELECT count(*) FROM (SELECT ${columns} FROM "${a}" EXCEPT ALL SELECT ${columns} FROM "${b}")`,
        )
      ).getRows()[0]![0];
    const cols = 'id, doubled, name, valid_from, valid_to, lsn, op, deleted';
    expect(
      Number((await c.runAndReadAll('SELECT count(*) FROM fv_items_doubled_v2')).getRows()[0]![0]),
    ).toBeGreaterThan(400);
    expect(await diff('fv_items_doubled_v1', 'fv_items_doubled_v2', cols)).toBe(0n);
    expect(await diff('fv_items_doubled_v2', 'fv_items_doubled_v1', cols)).toBe(0n);
    const pcols = 'id, value, valid_from, valid_to, lsn, op, deleted';
    expect(await diff('fv_items_plain_v1', 'fv_items_plain_v2', pcols)).toBe(0n);
    expect(await diff('fv_items_plain_v2', 'fv_items_plain_v1', pcols)).toBe(0n);
  });

  test('a definition changed without a version bump is refused, saying what changed and what to do', async () => {
    const h = randomHistory(5, { keys: 10, transactions: 20 });
    const first = await openLogWithFeatures({ views: [doubled(1)] });
    for (const batch of h.batches) await first.apply(batch);
    await first.log.close();

    const changed = featureView({
      name: 'items_doubled',
      version: 1,
      entity: item,
      source: 'items',
      features: { doubled: float64, name: text },
      transform: (row) => ({ doubled: (row.value as number) * 3, name: row.name as string | null }),
    });
    // Refused when the store opens (start-up), before any batch.
    const error = await openLogWithFeatures({ views: [changed] }, first.path).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
    expect(String((error as Error).message)).toMatch(
      /items_doubled v1 changed.*transform changed.*Bump its version to 2/,
    );
    // The store is untouched and still readable.
    const store = await openOfflineStore(first.path);
    stores.push(store);
    expect((await store.latest('items_doubled')).numRows).toBeGreaterThan(0);
  });
});

describe('schema versions', () => {
  test('a view reading a column added later opens on a log that also holds the older schema (was checked against the oldest stored one)', async () => {
    const first = await openLogWithFeatures({ views: [doubled(1)] });
    const withTier = {
      ...ITEMS,
      version: 2,
      columns: [...ITEMS.columns, { name: 'tier', type: 'int4', array: false, typeOid: 23, key: false }],
    };
    const change = {
      table: ITEMS.table,
      op: 'c' as const,
      key: { id: 2 },
      before: null,
      after: { id: 2, value: 1, name: 'x', tier: 5 },
      position: 2001n,
      commitPosition: 2001n,
      commitTime: T0,
      xid: 7,
      schemaVersion: 2,
    };
    await first.apply(batchOf({ changes: [], complete: true, checkpoint: 2000n, schemas: [ITEMS] }));
    await first.apply(batchOf({ changes: [change], complete: true, checkpoint: 2001n, schemas: [withTier] }));
    await first.log.close();

    const tiered = featureView({
      name: 'tiered',
      version: 1,
      entity: item,
      source: 'items',
      features: { tier: int32 },
      transform: (row) => ({ tier: row.tier as number | null }),
    });
    const again = await openLogWithFeatures({ views: [doubled(1), tiered] }, first.path);
    logs.push(again.log);
    expect(
      rowsOf(await new DuckDBOfflineStore(again.log.connection).latest('tiered')).map((r) => [r.id, r.tier]),
    ).toEqual([[2, 5]]);
  });
});

describe('storage layout', () => {
  test('a history written by an older featureflow (a table updated in place) is refused with a clear error, not read wrongly', async () => {
    const h = randomHistory(8, { keys: 10, transactions: 20 });
    const first = await openLogWithFeatures({ views: [doubled(1)] });
    for (const batch of h.batches) await first.apply(batch);
    // What the older layout left: fv_<name>_v<version> as a table with valid_to, no base table.
    const c = first.log.connection;
    await c.run('CREATE TABLE old_rows AS SELECT * FROM fv_items_doubled_v1');
    await c.run(
      'DROP VIEW fv_items_doubled_v1; DROP TABLE fv_items_doubled_v1__rows; ALTER TABLE old_rows RENAME TO fv_items_doubled_v1',
    );
    await first.log.close();

    const store = await openOfflineStore(first.path);
    stores.push(store);
    for (const read of [() => store.latest('items_doubled'), () => store.status()]) {
      const error = await read().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
      expect((error as Error).message).toMatch(
        /items_doubled v1: its history fv_items_doubled_v1 was written by an older featureflow.*Bump the view's version/,
      );
    }
    store.close();
    stores.pop();
    const error = await openLogWithFeatures({ views: [doubled(1)] }, first.path).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_VERSION' });
  });
});

describe('rows a view rejects', () => {
  test('a transform that throws on one row sends it to the dead-letter table; the rest applies', async () => {
    const picky = featureView({
      name: 'picky',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      transform: (row) => {
        if (row.id === 3) throw new Error('cannot score item 3');
        return { value: row.value as number };
      },
    });
    const { log, apply } = await openLogWithFeatures({ views: [picky] });
    logs.push(log);
    const change = (id: number, op: 'r' | 'c' = 'c') => ({
      table: ITEMS.table,
      op,
      key: { id },
      before: null,
      after: { id, value: id / 2, name: 'x' },
      position: 2000n + BigInt(id),
      commitPosition: 3000n,
      commitTime: T0,
      xid: 7,
      schemaVersion: 1,
    });
    await apply(
      batchOf({ changes: [1, 2, 3, 4].map((id) => change(id)), complete: true, checkpoint: 3000n, schemas: [ITEMS] }),
    );
    const store = new DuckDBOfflineStore(log.connection);
    expect(rowsOf(await store.latest('picky')).map((r) => r.id)).toEqual([1, 2, 4]);
    const dead = rowsOf(await store.deadLetters('picky'));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      view: 'picky',
      version: 1,
      op: 'c',
      key: '{"id":3}',
      error: 'transform threw: cannot score item 3',
    });
    expect((await store.status()).find((s) => s.view === 'picky')).toMatchObject({ deadLetters: 1, entities: 3 });
  });

  test('a transform returning the wrong type: refused on the schema when the probe shows it, else dead-lettered per row', async () => {
    const wrong = featureView({
      name: 'wrong',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      transform: (row) => ({ value: String(row.value) as unknown as number }),
    });
    const { log, apply } = await openLogWithFeatures({ views: [wrong] });
    logs.push(log);
    const batch = batchOf({ changes: [], complete: true, checkpoint: 3000n, schemas: [ITEMS] });
    const error = await apply(batch).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FF_FEATURE_DEFINITION' });
    expect(String((error as Error).message)).toMatch(
      /feature view wrong v1 has a transform that returns a string for feature value, declared float64; convert the value or change the declared type/,
    );

    const sometimes = featureView({
      name: 'sometimes',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      transform: (row) => ({ value: (row.id === 2 ? 'two' : row.value) as number }),
    });
    const other = await openLogWithFeatures({ views: [sometimes] });
    logs.push(other.log);
    const rows = [1, 2].map((id) => ({
      table: ITEMS.table,
      op: 'c' as const,
      key: { id },
      before: null,
      after: { id, value: 1.5, name: 'x' },
      position: 2000n + BigInt(id),
      commitPosition: 3000n,
      commitTime: T0,
      xid: 7,
      schemaVersion: 1,
    }));
    await other.apply(batchOf({ changes: rows, complete: true, checkpoint: 3000n, schemas: [ITEMS] }));
    const dead = rowsOf(await new DuckDBOfflineStore(other.log.connection).deadLetters());
    expect(dead.map((d) => d.error)).toEqual(['feature value: got a string for a float64 feature; return a number']);
  });

  test('a transform reading a column the table lacks fails naming the view, the column and the fix', async () => {
    const typo = featureView({
      name: 'typo',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      transform: (row) => ({ value: row.valeu as number }),
    });
    const { log, apply } = await openLogWithFeatures({ views: [typo] });
    logs.push(log);
    const error = await apply(batchOf({ changes: [], complete: true, checkpoint: 3000n, schemas: [ITEMS] })).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'FF_FEATURE_DEFINITION' });
    expect((error as Error).message).toBe(
      'feature view typo v1 has a transform that reads column "valeu", which public.items does not have (its columns: id, value, name); fix the transform, or add the column to the table',
    );
  });
});

describe('exports and spines', () => {
  test('tensor features in a training set: values before a delete, nulls at and after it, nulls beyond the ttl', async () => {
    const vec = featureView({
      name: 'vec',
      version: 1,
      entity: item,
      source: 'items',
      features: { v: tensor('float32', [2, 2]) },
      transform: (row) => ({ v: [row.value as number, 1, 2, 3] }),
      ttl: 60,
    });
    const { log, apply } = await openLogWithFeatures({ views: [vec] });
    logs.push(log);
    const at = (s: number) => T0 + BigInt(s) * 1_000_000n;
    const change = (op: 'c' | 'd', s: number) => ({
      table: ITEMS.table,
      op,
      key: { id: 1 },
      before: op === 'd' ? { id: 1 } : null,
      after: op === 'd' ? null : { id: 1, value: 0.5, name: 'n' },
      position: BigInt(2000 + s),
      commitPosition: BigInt(2000 + s),
      commitTime: at(s),
      xid: s,
      schemaVersion: 1,
    });
    await apply(
      batchOf({ changes: [change('c', 0), change('d', 30)], complete: true, checkpoint: 3000n, schemas: [ITEMS] }),
    );
    const spine = [10, 30, 40]
      .map((s) => ({ id: 1, event_timestamp: at(s) }))
      .concat([{ id: 1, event_timestamp: at(29) }]);
    const set = await new DuckDBOfflineStore(log.connection).trainingSet({ spine, features: [vec], ttl: 20 });
    expect(String(set.schema.fields[2]!.type)).toBe('FixedSizeList[4]<Float32>');
    expect(set.schema.fields[2]!.metadata.get('featureflow.shape')).toBe('[2,2]');
    const values = [0, 1, 2, 3].map((r) => set.getChild('v')!.get(r));
    expect(values.map((v) => (v === null ? null : Array.from(v as Iterable<number>)))).toEqual([
      [0.5, 1, 2, 3],
      null,
      null,
      null,
    ]);
  });

  test('an empty view exports zero rows with its columns; unknown spine keys give nulls; time zones are instants', async () => {
    const { log, apply } = await openLogWithFeatures({ views: [doubled(1)] });
    logs.push(log);
    await apply(batchOf({ changes: [], complete: true, checkpoint: 1001n, schemas: [ITEMS] }));
    const store = new DuckDBOfflineStore(log.connection);
    const empty = await store.latest('items_doubled');
    expect(empty.numRows).toBe(0);
    expect(empty.schema.fields.map((f) => f.name)).toEqual(['id', 'doubled', 'name', 'valid_from']);
    const dir = mkdtempSync(join(tmpdir(), 'featureflow-empty-'));
    for (const file of ['empty.parquet', 'empty.arrow']) {
      const result = await store.export({ view: 'items_doubled' }, join(dir, file));
      expect(result.rows).toBe(0);
      expect(JSON.parse(readFileSync(result.manifestPath, 'utf8'))).toMatchObject({
        kind: 'latest',
        rows: 0,
        views: [{ name: 'items_doubled', version: 1 }],
      });
    }
    const parquet = await log.connection.runAndReadAll(`SELECT * FROM read_parquet('${join(dir, 'empty.parquet')}')`);
    expect([parquet.currentRowCount, parquet.columnNames()]).toEqual([0, ['id', 'doubled', 'name', 'valid_from']]);
    const arrowFile = tableFromIPC(readFileSync(join(dir, 'empty.arrow')));
    expect([arrowFile.numRows, arrowFile.schema.fields.map((f) => f.name)]).toEqual([
      0,
      ['id', 'doubled', 'name', 'valid_from'],
    ]);

    const at = (s: number) => T0 + BigInt(s) * 1_000_000n;
    const upd = (id: number, value: number, s: number, op: 'c' | 'u') => ({
      table: ITEMS.table,
      op,
      key: { id },
      before: null,
      after: { id, value, name: 'n' },
      position: BigInt(2000 + s),
      commitPosition: BigInt(2000 + s),
      commitTime: at(s),
      xid: s,
      schemaVersion: 1,
    });
    await apply(
      batchOf({ changes: [upd(1, 1, 0, 'c'), upd(1, 2, 3600, 'u')], complete: true, checkpoint: 6000n, schemas: [] }),
    );
    const iso = (micros: bigint, offset = 'Z') => new Date(Number(micros / 1000n)).toISOString().replace('Z', offset);
    const spine = [
      { id: 1, event_timestamp: iso(at(1800)) }, // 1
      { id: 1, event_timestamp: iso(at(3600 + 7200), '+02:00').replace('T', ' ') }, // 02:00 later on the wall clock = at(3600) exactly
      { id: 1, event_timestamp: iso(at(3599), '').replace(/\.\d+$/, '') }, // naive: UTC
      { id: 99, event_timestamp: iso(at(3600)) }, // unknown key
      { id: 1, event_timestamp: iso(at(-1)) }, // before the first version
    ];
    const set = rowsOf(await store.trainingSet({ spine, features: ['items_doubled:doubled'] }));
    expect(set.map((r) => r.doubled)).toEqual([2, 4, 2, null, null]);
    // A spine of no rows (nothing sampled yet) gives an empty training set with its columns.
    const none = await store.trainingSet({ spine: [], features: ['items_doubled:doubled'] });
    expect([none.numRows, none.schema.fields.map((f) => f.name)]).toEqual([0, ['id', 'event_timestamp', 'doubled']]);
    expect(set.map((r) => r.event_timestamp)).toEqual(
      [at(1800), at(3600), at(3599), at(3600), at(-1)].map((m) => Number(m / 1000n)),
    );
  });

  test('a service given by its name joins its features; an int4 key from JS rows or an Int32 Arrow column stays Int32', async () => {
    const service = featureService({ name: 'item_scoring', features: [doubled(1).select('doubled'), plain] });
    const { log, apply } = await openLogWithFeatures({ views: [doubled(1), plain] });
    logs.push(log);
    const h = randomHistory(4, { keys: 5, transactions: 20, truncates: false });
    for (const batch of h.batches) await apply(batch);
    const store = new DuckDBOfflineStore(log.connection, { definitions: { services: [service] } });
    const when = new Date(Number(T0 / 1000n) + 3_600_000).toISOString();
    const spine = [1, 2, 3].map((id) => ({ id, event_timestamp: when }));
    const byName = await store.trainingSet({ spine, features: 'item_scoring' });
    const byService = await store.trainingSet({ spine, features: service });
    expect(byName.schema.fields.map((f) => f.name)).toEqual(['id', 'event_timestamp', 'doubled', 'value']);
    expect(rowsOf(byName)).toEqual(rowsOf(byService));
    expect(String(byName.schema.fields[0]!.type)).toBe('Int32');
    const arrowSpine = tableFromArrays({ id: Int32Array.from([1, 2, 3]), event_timestamp: [when, when, when] });
    const fromArrow = await store.trainingSet({ spine: arrowSpine, features: 'item_scoring' });
    expect(String(fromArrow.schema.fields[0]!.type)).toBe('Int32');
    expect(rowsOf(fromArrow)).toEqual(rowsOf(byName));
    // A view name still works alone; a name that is neither is refused saying what it looked for.
    expect((await store.trainingSet({ spine, features: 'items_plain' })).schema.fields.map((f) => f.name)).toEqual([
      'id',
      'event_timestamp',
      'value',
    ]);
    await expect(store.trainingSet({ spine, features: 'no_such' })).rejects.toThrow(/no_such has no table/);
  });
});
