import { createServer, connect, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FeatureflowError } from '../framework/errors.js';
import { entity } from '../framework/features/entity.js';
import type { FeatureRow, FeatureRowBatch } from '../framework/features/feature-rows.js';
import { float64, text } from '../framework/features/feature-types.js';
import type { StoredFeatureValue } from '../framework/features/feature-values.js';
import { featureView, type FeatureView } from '../framework/features/feature-view.js';
import type { OnlineStore } from '../framework/interfaces/index.js';
import type { Op, Value } from '../framework/types.js';
import { memory } from '../stores/memory/index.js';
import { redis } from '../stores/redis/index.js';
import { resolveRedisConfig, redactUrl } from '../stores/redis/redis-config.js';
import { freePort } from '../testing/pg-cluster.js';
import { startRedis, type RedisServer } from '../testing/redis-server.js';
import { EVERY_TYPE_FEATURES } from './features-helpers.js';
import { randomName, waitFor } from './helpers.js';

let server: RedisServer;

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  await server?.stop();
});

// ---------------------------------------------------------------------------------------------
// Fixtures

const item = entity({ name: 'item', keys: ['id'] });
const account = entity({ name: 'account', keys: ['tenant', 'id'] });
const HOUR = 3_600_000_000n;
/** A commit time: 2024-01-01T00:00:00Z in µs. */
const T0 = 1_704_067_200_000_000n;

/** A view with one feature of every type. */
function everyTypeView(): FeatureView {
  return featureView({
    name: randomName('every'),
    version: 1,
    entity: item,
    source: 'public.items',
    features: EVERY_TYPE_FEATURES,
  });
}

/** A view of one float64 feature, `amount`. */
function amountView(options: { ttl?: string; version?: number; name?: string } = {}): FeatureView {
  return featureView({
    name: options.name ?? randomName('amounts'),
    version: options.version ?? 1,
    entity: item,
    source: 'public.items',
    features: { amount: float64, note: text },
    ...(options.ttl ? { ttl: options.ttl } : {}),
  });
}

/** A row whose transaction committed at its own position, unless `commitPosition` says otherwise. */
function row(
  op: Op,
  key: readonly Value[],
  values: readonly StoredFeatureValue[] | null,
  position: bigint,
  commitTime = T0,
  commitPosition = position,
): FeatureRow {
  return { op, key, values: op === 'd' || op === 't' ? null : values, position, commitPosition, commitTime };
}

/** A value row of an {@link amountView}. */
const amount = (id: Value, value: number, position: bigint, op: Op = 'u', commitTime = T0) =>
  row(op, [id], [value, `n${value}`], position, commitTime);
const del = (id: Value, position: bigint, commitTime = T0) => row('d', [id], null, position, commitTime);
const truncate = (position: bigint) => row('t', [], null, position);
const batch = (view: FeatureView, ...rows: FeatureRow[]): FeatureRowBatch => ({ view, rows });

/** Each key's amount, or its status when it has none. */
async function amounts(
  store: OnlineStore,
  view: FeatureView,
  ids: readonly Value[],
  now?: bigint,
): Promise<(number | string)[]> {
  const found = await store.read(
    view,
    ids.map((id) => [id]),
    now,
  );
  return found.map((v) => (v.status === 'ok' ? (v.values![0] as number) : v.status));
}

// ---------------------------------------------------------------------------------------------
// One contract, every implementation

const implementations: { name: string; create: () => OnlineStore }[] = [
  { name: 'memory', create: () => memory().create() },
  { name: 'redis', create: () => redis({ url: server.url, prefix: randomName('ff') }).create() },
];

describe.each(implementations)('online store contract: $name', ({ create }) => {
  let store: OnlineStore;

  beforeAll(async () => {
    store = create();
    await store.open();
  });

  afterAll(async () => {
    await store?.close();
  });

  test('inserts, updates and deletes; reads answer in the order asked, a delete keeps its position', async () => {
    const view = amountView();
    await store.write([batch(view, amount(1, 10, 100n, 'c'), amount(2, 20, 101n, 'c'), amount(3, 30, 102n, 'r'))]);
    expect(await amounts(store, view, [3, 99, 1, 2])).toEqual([30, 'missing', 10, 20]);
    expect(await store.count(view)).toBe(3);

    await store.write([batch(view, amount(1, 11, 110n), del(2, 111n, T0 + 5n))]);
    const [one, two, unknown] = await store.read(view, [[1], [2], [99]]);
    expect(one).toEqual({ status: 'ok', values: [11, 'n11'], position: 110n, commitTime: T0 });
    expect(two).toEqual({ status: 'missing', values: null, position: 111n, commitTime: T0 + 5n });
    expect(unknown).toEqual({ status: 'missing', values: null, position: null, commitTime: null });
    expect(await store.count(view)).toBe(2);
    expect(await store.read(view, [])).toEqual([]);
  });

  test('replaying the same rows changes nothing', async () => {
    const view = amountView();
    const rows = [
      amount(1, 1, 10n, 'c'),
      amount(2, 2, 11n, 'c'),
      amount(1, 3, 12n),
      del(2, 13n),
      amount(3, 4, 14n, 'c'),
      truncate(15n),
      amount(4, 5, 16n, 'c'),
      amount(4, 6, 17n),
    ];
    await store.write([batch(view, ...rows)]);
    const before = await store.read(view, [[1], [2], [3], [4]]);
    expect(await amounts(store, view, [1, 2, 3, 4])).toEqual(['missing', 'missing', 'missing', 6]);
    const replays = [
      [batch(view, ...rows)],
      [batch(view, ...[...rows].reverse())],
      rows.map((r) => batch(view, r)),
      [batch(view, rows[6]!)],
    ];
    for (const replay of replays) {
      await store.write(replay);
      expect(await store.read(view, [[1], [2], [3], [4]])).toEqual(before);
      expect(await store.count(view)).toBe(1);
    }
  });

  test('an older row than the stored one is ignored, also within one batch', async () => {
    const view = amountView();
    await store.write([batch(view, amount(1, 20, 20n), amount(1, 15, 15n), amount(2, 7, 7n), amount(2, 7.5, 7n))]);
    expect(await amounts(store, view, [1, 2])).toEqual([20, 7]);
    await store.write([batch(view, amount(1, 19, 19n))]);
    expect(await amounts(store, view, [1])).toEqual([20]);
  });

  test('commit order wins: a transaction that began earlier but committed later overwrites (an entity keyed apart from the table)', async () => {
    const view = amountView();
    // T1 changed entity 1 at 0x100 and committed at 0x500; T2 changed it at 0x200 and committed at 0x300.
    const t2 = row('u', [1], [2, 'n2'], 0x200n, T0, 0x300n);
    const t1 = row('u', [1], [1, 'n1'], 0x100n, T0, 0x500n);
    await store.write([batch(view, t2), batch(view, t1)]);
    expect(await amounts(store, view, [1])).toEqual([1]);
    // Replaying both, in any order, changes nothing.
    await store.write([batch(view, t1, t2)]);
    expect(await amounts(store, view, [1])).toEqual([1]);
    // Within one transaction, the later change wins.
    await store.write([
      batch(view, row('u', [1], [3, 'n3'], 0x610n, T0, 0x700n), row('u', [1], [4, 'n4'], 0x620n, T0, 0x700n)),
    ]);
    expect(await amounts(store, view, [1])).toEqual([4]);
    // A truncate and an insert after it in one transaction: the insert stays.
    await store.write([
      batch(view, row('t', [], null, 0x810n, T0, 0x900n), row('c', [2], [5, 'n5'], 0x820n, T0, 0x900n)),
    ]);
    expect(await amounts(store, view, [1, 2])).toEqual(['missing', 5]);
  });

  test('positions beyond 2^53 compare exactly', async () => {
    const view = amountView();
    const big = 2n ** 63n + 1n;
    // big and big + 1 are the same double: a guard comparing doubles would drop the second row.
    expect(Number(big)).toBe(Number(big + 1n));
    await store.write([batch(view, amount(1, 1, big), amount(1, 2, big + 1n))]);
    const [v] = await store.read(view, [[1]]);
    expect(v).toMatchObject({ status: 'ok', values: [2, 'n2'], position: big + 1n });
    await store.write([batch(view, amount(1, 3, big))]);
    expect(await amounts(store, view, [1])).toEqual([2]);
    await store.write([batch(view, amount(1, 4, 2n ** 64n - 1n))]);
    expect(await amounts(store, view, [1])).toEqual([4]);
  });

  test('a tombstone keeps an older replayed row from bringing a deleted entity back', async () => {
    const view = amountView();
    await store.write([batch(view, amount(1, 1, 10n, 'c'), del(1, 30n))]);
    await store.write([batch(view, amount(1, 2, 20n))]);
    expect(await amounts(store, view, [1])).toEqual(['missing']);
    // A delete of an entity never seen leaves a tombstone too.
    await store.write([batch(view, del(2, 50n)), batch(view, amount(2, 5, 40n, 'c'))]);
    expect(await amounts(store, view, [2])).toEqual(['missing']);
    await store.write([batch(view, amount(1, 3, 31n, 'c'), amount(2, 6, 51n, 'c'))]);
    expect(await amounts(store, view, [1, 2])).toEqual([3, 6]);
    expect(await store.count(view)).toBe(2);
  });

  test('a truncate clears its view version only; older rows stay out, newer ones come back', async () => {
    const view = amountView();
    const nextVersion = amountView({ name: view.name, version: 2 });
    const other = amountView();
    await store.write([
      batch(view, amount(1, 1, 10n, 'c'), amount(2, 2, 11n, 'c'), del(3, 12n)),
      batch(nextVersion, amount(1, 100, 10n, 'c')),
      batch(other, amount(1, 1000, 10n, 'c')),
    ]);
    await store.write([batch(view, truncate(50n))]);
    expect(await store.read(view, [[1], [2], [3]])).toEqual(
      Array(3).fill({ status: 'missing', values: null, position: null, commitTime: null }),
    );
    expect(await store.count(view)).toBe(0);
    expect(await amounts(store, nextVersion, [1])).toEqual([100]);
    expect(await amounts(store, other, [1])).toEqual([1000]);

    await store.write([batch(view, amount(1, 5, 49n), amount(2, 6, 50n))]);
    expect(await amounts(store, view, [1, 2])).toEqual(['missing', 'missing']);
    await store.write([batch(view, amount(4, 9, 51n, 'c'))]);
    await store.write([batch(view, truncate(40n)), batch(view, truncate(50n))]);
    expect(await amounts(store, view, [4])).toEqual([9]);
    await store.write([batch(view, amount(2, 7, 60n), truncate(70n), amount(3, 8, 80n, 'c'))]);
    expect(await amounts(store, view, [1, 2, 3, 4])).toEqual(['missing', 'missing', 8, 'missing']);
    expect(await store.count(view)).toBe(1);
  });

  test('ttl: values older than the ttl at the read are expired, with their position', async () => {
    const view = amountView({ ttl: '1h' });
    await store.write([batch(view, amount(1, 1, 10n, 'c', T0), amount(2, 2, 11n, 'c', T0 + HOUR), del(3, 12n, T0))]);
    expect(await amounts(store, view, [1, 2, 3], T0 + HOUR)).toEqual([1, 2, 'missing']);
    const later = await store.read(view, [[1], [2], [3]], T0 + HOUR + 1n);
    expect(later[0]).toEqual({ status: 'expired', values: null, position: 10n, commitTime: T0 });
    expect(later[1]).toMatchObject({ status: 'ok', values: [2, 'n2'] });
    expect(later[2]).toMatchObject({ status: 'missing', position: 12n });
    // Without `now`, the clock: 2024 is long past.
    expect(await amounts(store, view, [1, 2])).toEqual(['expired', 'expired']);
    // A view without a ttl never expires.
    const forever = amountView();
    await store.write([batch(forever, amount(1, 1, 10n, 'c', 0n))]);
    expect(await amounts(store, forever, [1])).toEqual([1]);
  });

  test('watermark: per view version, null before any, never moves backwards', async () => {
    const view = amountView();
    const nextVersion = amountView({ name: view.name, version: 2 });
    expect(await store.watermark(view)).toBeNull();
    await store.setWatermark(view, 100n);
    await store.setWatermark(view, 50n);
    expect(await store.watermark(view)).toBe(100n);
    await store.setWatermark(view, 2n ** 64n - 2n);
    expect(await store.watermark(view)).toBe(2n ** 64n - 2n);
    expect(await store.watermark(nextVersion)).toBeNull();
  });

  test('watermark of a view consumed in parts (Kafka partitions): the lowest part, once every part has one', async () => {
    const view = amountView();
    // A load finishes with the whole view's watermark; the parts' positions come after.
    await store.write([batch(view, amount(1, 1, 10n, 'r'))]);
    expect(await store.setWatermark(view, 10n)).toBe(true);
    expect(await store.setWatermark(view, 40n, { index: 0, count: 3 })).toBe(true);
    expect(await store.setWatermark(view, 30n, { index: 2, count: 3 })).toBe(true);
    // Part 1 has no position yet: the rows of its entities may be anywhere past the load.
    expect(await store.watermark(view)).toBe(10n);
    await store.setWatermark(view, 50n, { index: 1, count: 3 });
    expect(await store.watermark(view)).toBe(30n);
    // A part never moves back, and the watermark follows the lowest.
    await store.setWatermark(view, 20n, { index: 2, count: 3 });
    expect(await store.watermark(view)).toBe(30n);
    await store.setWatermark(view, 60n, { index: 2, count: 3 });
    expect(await store.watermark(view)).toBe(40n);
    await store.setWatermark(view, 70n, { index: 0, count: 3 });
    expect(await store.watermark(view)).toBe(50n);
  });

  test('needsLoad: true until a load ends with setWatermark', async () => {
    const view = amountView();
    expect(await store.needsLoad(view)).toBe(true);
    await store.write([batch(view, amount(1, 1, 10n, 'r'), amount(2, 2, 10n, 'r'))]);
    expect(await store.needsLoad(view)).toBe(true);
    await store.setWatermark(view, 10n);
    expect(await store.needsLoad(view)).toBe(false);
    expect(await store.needsLoad(amountView({ name: view.name, version: 2 }))).toBe(true);
  });

  test('every feature type round-trips exactly, nulls included', async () => {
    const view = everyTypeView();
    const full: StoredFeatureValue[] = [
      Math.fround(0.1),
      0.1,
      -2147483648,
      2n ** 63n - 1n,
      true,
      'héllo wörld ✓ 🚀 \u0000 "quoted" \\ \n',
      1_700_000_000_123_456n,
      Float32Array.of(0.5, -1.25, Math.fround(1 / 3), 3.4e38, -0, 1e-45),
      Float64Array.of(0.1, -0, Number.MAX_VALUE, Number.MIN_VALUE),
      Int32Array.of(-2147483648, 2147483647, 0, 7),
    ];
    const edges: StoredFeatureValue[] = [
      -0,
      NaN,
      2147483647,
      -(2n ** 63n),
      false,
      '',
      -62_135_596_800_000_000n,
      null,
      null,
      null,
    ];
    const beyondDoubles: StoredFeatureValue[] = [
      Infinity,
      -Infinity,
      0,
      2n ** 53n + 1n,
      null,
      '日本語のテキスト',
      0n,
      null,
      Float64Array.of(NaN, Infinity, -Infinity, 1e-310),
      null,
    ];
    const nulls: StoredFeatureValue[] = Array(10).fill(null);
    await store.write([
      batch(
        view,
        row('c', [1], full, 10n),
        row('c', [2], edges, 11n),
        row('c', [3], beyondDoubles, 12n),
        row('c', [4], nulls, 13n),
      ),
    ]);
    const found = await store.read(view, [[1], [2], [3], [4]]);
    expect(found.map((v) => v.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(found[0]!.values).toStrictEqual(full);
    expect(found[1]!.values).toStrictEqual(edges);
    expect(found[2]!.values).toStrictEqual(beyondDoubles);
    expect(found[3]!.values).toStrictEqual(nulls);
    // An entity of nulls is an entity with values.
    expect(await store.count(view)).toBe(4);

    // float32 is stored as the offline store's FLOAT holds it: rounded to 32 bits.
    await store.write([batch(view, row('u', [1], [0.1, ...full.slice(1)], 20n))]);
    const [rounded] = await store.read(view, [[1]]);
    expect(rounded!.values![0]).toBe(Math.fround(0.1));

    // What a read returns is the caller's: changing it changes nothing stored.
    (rounded!.values![7] as Float32Array)[0] = 99;
    const [again] = await store.read(view, [[1]]);
    expect((again!.values![7] as Float32Array)[0]).toBe(0.5);
  });

  test('an int4 key and an int8 key of the same number are the same entity; a text key is not', async () => {
    const view = amountView();
    await store.write([batch(view, amount(1, 1, 10n, 'c'))]);
    await store.write([batch(view, amount(1n, 2, 11n))]);
    expect(await amounts(store, view, [1, 1n, '1'])).toEqual([2, 2, 'missing']);
    const big = 2n ** 60n;
    await store.write([batch(view, amount(big, 3, 12n, 'c'), amount(-1n, 4, 13n, 'c'))]);
    expect(await amounts(store, view, [big, -1])).toEqual([3, 4]);
    expect(await store.count(view)).toBe(3);
  });

  test('composite keys: every component counts, in the entity order', async () => {
    const view = featureView({
      name: randomName('accounts'),
      version: 1,
      entity: account,
      source: 'public.accounts',
      features: { balance: float64 },
    });
    await store.write([
      batch(
        view,
        row('c', ['a', 1], [1], 10n),
        row('c', ['a', 2], [2], 11n),
        row('c', ['b', 1], [3], 12n),
        row('c', ['a,1', 1], [4], 13n),
      ),
    ]);
    await store.write([batch(view, row('u', ['a', 1n], [5], 14n), row('d', ['b', 1], null, 15n))]);
    const found = await store.read(view, [
      ['b', 1],
      ['a', 2],
      ['a', 1],
      [1, 'a'],
      ['a,1', 1],
    ]);
    expect(found.map((v) => (v.status === 'ok' ? v.values![0] : v.status))).toEqual(['missing', 2, 5, 'missing', 4]);
    expect(await store.count(view)).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Redis only

describe('redis online store', () => {
  test('config: REDIS_URL, then the default; validated and frozen; the password never shown', () => {
    expect(resolveRedisConfig({}, {}).url).toBe('redis://127.0.0.1:6379');
    expect(resolveRedisConfig({}, { REDIS_URL: 'redis://cache:6380' }).url).toBe('redis://cache:6380');
    const config = resolveRedisConfig({ url: 'redis://u:pw@h:1/2' }, { REDIS_URL: 'redis://cache:6380' });
    expect(config).toMatchObject({ url: 'redis://u:pw@h:1/2', prefix: 'featureflow', rowsPerScript: 1000 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(redactUrl('redis://u:s3cret@h:1/2')).toBe('redis://u:***@h:1/2');
    expect(redactUrl('redis://:s3cret@h:1')).not.toContain('s3cret');
    let error: unknown;
    try {
      resolveRedisConfig({ url: 'http://u:s3cret@h', prefix: 'a b', commandTimeoutMs: 0 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FeatureflowError);
    expect((error as FeatureflowError).code).toBe('FF_CONFIG_INVALID');
    expect((error as Error).message).toMatch(/redis:\/\/.*prefix.*commandTimeoutMs/s);
    expect((error as Error).message).not.toContain('s3cret');
  });

  test('open() with no server: a coded, retriable error naming the URL without its password and the fix', async () => {
    const port = await freePort();
    const store = redis({ url: `redis://user:s3cret@127.0.0.1:${port}`, connectTimeoutMs: 2000 }).create();
    const error = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FeatureflowError);
    expect(error).toMatchObject({ code: 'FF_ONLINE_UNREACHABLE', retriable: true });
    const message = (error as Error).message;
    expect(message).toContain(`redis://user:***@127.0.0.1:${port}`);
    expect(message).toContain('ECONNREFUSED');
    expect(message).toMatch(/start redis-server.*REDIS_URL/);
    expect(message).not.toContain('s3cret');
    await store.close();
  });

  test('wrong credentials: a coded error that is not retriable, without the password', async () => {
    const guarded = await startRedis({ password: 'right-one' });
    try {
      const store = redis({ url: `redis://:wrong-one@127.0.0.1:${guarded.port}` }).create();
      const error = await store.open().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'FF_ONLINE_AUTH', retriable: false });
      expect((error as Error).message).toContain(`redis://:***@127.0.0.1:${guarded.port}`);
      expect((error as Error).message).not.toContain('wrong-one');
      // Nor anywhere a logger would print: ioredis puts the failed command's arguments on its error.
      expect(
        JSON.stringify(error, (_k, v: unknown) =>
          v instanceof Error ? { ...v, message: v.message, cause: v.cause } : v,
        ),
      ).not.toContain('wrong-one');
      await store.close();
      const allowed = redis({ url: guarded.url }).create();
      await allowed.open();
      expect(await allowed.needsLoad(amountView())).toBe(true);
      await allowed.close();
    } finally {
      await guarded.stop();
    }
  });

  test('a server restarted empty needs a load; writes after it do not count as one', async () => {
    const own = await startRedis();
    const store = redis({ url: own.url }).create();
    try {
      await store.open();
      const view = amountView();
      expect(await store.needsLoad(view)).toBe(true);
      await store.write([batch(view, amount(1, 1, 10n, 'r'), amount(2, 2, 10n, 'r'))]);
      expect(await store.setWatermark(view, 10n)).toBe(true);
      expect(await store.needsLoad(view)).toBe(false);

      // A second process finds the load done.
      const second = redis({ url: own.url }).create();
      await second.open();
      expect(await second.needsLoad(view)).toBe(false);
      await second.close();

      await own.restart();
      await waitFor('the client to reconnect', () =>
        store.watermark(view).then(
          () => true,
          () => false,
        ),
      );
      expect(await store.watermark(view)).toBeNull();
      // The stream goes on: a change and its watermark, but rows 1 and 2 of the load are gone.
      await store.write([batch(view, amount(3, 3, 20n, 'c'))]);
      // The watermark is refused: it would claim rows the server lost.
      expect(await store.setWatermark(view, 20n)).toBe(false);
      expect(await store.watermark(view)).toBeNull();
      expect(await store.needsLoad(view)).toBe(true);
      expect(await amounts(store, view, [1, 3])).toEqual(['missing', 3]);

      // The load again, then its watermark.
      await store.write([batch(view, amount(1, 1, 10n, 'r'), amount(2, 2, 10n, 'r'), amount(3, 3, 20n, 'r'))]);
      expect(await store.setWatermark(view, 20n)).toBe(true);
      expect(await store.needsLoad(view)).toBe(false);
      expect(await store.watermark(view)).toBe(20n);
      expect(await amounts(store, view, [1, 2, 3])).toEqual([1, 2, 3]);

      // A load the server loses midway is not marked done by its watermark.
      const other = amountView();
      expect(await store.needsLoad(other)).toBe(true);
      await store.write([batch(other, amount(1, 1, 10n, 'r'))]);
      await own.restart();
      await waitFor('the client to reconnect', () =>
        store.count(other).then(
          () => true,
          () => false,
        ),
      );
      await store.write([batch(other, amount(2, 2, 10n, 'r'))]);
      expect(await store.setWatermark(other, 10n)).toBe(false);
      expect(await store.needsLoad(other)).toBe(true);
    } finally {
      await store.close();
      await own.stop();
    }
  });

  test('two processes that load at once both finish; the first watermark marks the load done', async () => {
    const own = await startRedis();
    const first = redis({ url: own.url }).create();
    const second = redis({ url: own.url }).create();
    try {
      await first.open();
      await second.open();
      const view = amountView();
      // Both start a load before either finishes (the second process joins while the first loads).
      expect(await first.needsLoad(view)).toBe(true);
      expect(await second.needsLoad(view)).toBe(true);
      await first.write([batch(view, amount(1, 1, 10n, 'r'))]);
      await second.write([batch(view, amount(1, 1, 10n, 'r'))]);
      // Neither takes the other's load for a server that lost its data.
      expect(await first.setWatermark(view, 10n)).toBe(true);
      expect(await second.setWatermark(view, 10n)).toBe(true);
      expect(await first.needsLoad(view)).toBe(false);
      expect(await second.needsLoad(view)).toBe(false);
      expect(await amounts(first, view, [1])).toEqual([1]);
    } finally {
      await first.close();
      await second.close();
      await own.stop();
    }
  });

  test('server down mid-run: writes and reads fail with a retriable coded error, then work once it is back', async () => {
    const own = await startRedis();
    const store = redis({ url: own.url, commandTimeoutMs: 2000 }).create();
    try {
      await store.open();
      const view = amountView();
      await store.write([batch(view, amount(1, 1, 10n, 'c'))]);
      await own.kill();
      for (const attempt of [
        () => store.write([batch(view, amount(1, 2, 11n))]),
        () => store.read(view, [[1]]),
        () => store.needsLoad(view),
      ]) {
        const error = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(FeatureflowError);
        expect(error).toMatchObject({ code: 'FF_ONLINE_UNREACHABLE', retriable: true });
        expect((error as Error).message).toContain(own.url);
      }
      await own.start();
      await waitFor('a write to succeed after the restart', () =>
        store.write([batch(view, amount(1, 3, 12n))]).then(
          () => true,
          () => false,
        ),
      );
      expect(await amounts(store, view, [1])).toEqual([3]);
      expect(await store.needsLoad(view)).toBe(true);
    } finally {
      await store.close();
      await own.stop();
    }
  });

  test('a write of many rows in several batches is one round trip of script calls; a read is one call', async () => {
    const proxy = await replyHoldingProxy(server.port);
    const monitor = new Redis(server.url);
    const prefix = randomName('rt');
    const store = redis({ url: proxy.url, prefix, rowsPerScript: 50 }).create();
    try {
      await store.open();
      const views = [amountView(), amountView(), amountView()];
      // Warm up: the first call of a script on a connection sends its source (EVAL), later ones its hash.
      await store.write([batch(views[0]!, amount(0, 0, 1n))]);
      await store.read(views[0]!, [[0]]);
      const commands: string[] = [];
      const watching = await monitor.monitor();
      watching.on('monitor', (_time: string, args: string[], source: string) => {
        if (source !== 'lua' && args.some((a) => a.includes(prefix))) commands.push(args[0]!.toLowerCase());
      });

      // With every reply held back, the server still receives all of the write's script calls: the
      // client sent them without waiting for any answer.
      proxy.hold();
      const writing = store.write(
        views.map((view, v) =>
          batch(view, ...Array.from({ length: 100 }, (_, i) => amount(i, i, BigInt(10 + v * 100 + i), 'c'))),
        ),
      );
      // 3 batches × 100 rows at 50 rows per script call.
      await waitFor('the server to receive every script call of the write', () => commands.length === 6, 10_000);
      proxy.release();
      await writing;

      proxy.hold();
      const reading = store.read(views[1]!, [[5], [7], [1000]]);
      await waitFor('the server to receive the read', () => commands.length === 7, 10_000);
      proxy.release();
      expect((await reading).map((v) => v.status)).toEqual(['ok', 'ok', 'missing']);
      expect(commands).toEqual(Array(7).fill('evalsha'));
      await watching.disconnect();
    } finally {
      await store.close();
      monitor.disconnect();
      await proxy.close();
    }
  });

  test('a truncate deletes the old keys in the background', async () => {
    const prefix = randomName('tr');
    const store = redis({ url: server.url, prefix }).create();
    const client = new Redis(server.url);
    try {
      await store.open();
      const view = amountView();
      await store.write([batch(view, ...Array.from({ length: 3000 }, (_, i) => amount(i, i, BigInt(i + 1), 'c')))]);
      const keys = async () => (await client.keys(`${prefix}:*`)).length;
      expect(await keys()).toBe(3001);
      await store.write([batch(view, truncate(5000n), amount(7, 7, 5001n, 'c'))]);
      expect(await amounts(store, view, [7, 8])).toEqual([7, 'missing']);
      await waitFor('the truncated keys to be deleted', async () => (await keys()) === 2);
      expect(await store.count(view)).toBe(1);
    } finally {
      await store.close();
      client.disconnect();
    }
  });
});

/** A TCP proxy in front of Redis that can hold the server's replies back until released. */
async function replyHoldingProxy(
  port: number,
): Promise<{ url: string; hold(): void; release(): void; close(): Promise<void> }> {
  let held: Buffer[] | undefined;
  let client: Socket | undefined;
  const sockets: Socket[] = [];
  const proxy: Server = createServer((socket) => {
    const upstream = connect({ host: '127.0.0.1', port });
    client = socket;
    sockets.push(socket, upstream);
    socket.on('data', (data) => upstream.write(data));
    upstream.on('data', (data) => (held ? held.push(data) : socket.write(data)));
    const end = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${address.port}`,
    hold: () => {
      held = [];
    },
    release: () => {
      const replies = held ?? [];
      held = undefined;
      for (const data of replies) client?.write(data);
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => proxy.close(() => resolve()));
    },
  };
}
