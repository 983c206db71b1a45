import { describe, expect, test } from 'vitest';
import type { FeatureflowError } from '../framework/errors.js';
import type { FeatureRowsMessage } from '../framework/interfaces/change-bus.js';
import type { Prediction } from '../framework/interfaces/prediction-sink.js';
import type { ColumnSchema, TableSchema } from '../framework/types.js';
import { InProcessBus } from '../framework/serving/in-process-bus.js';
import { featureJson, keyFromJson, keyFromText, rowFromJson } from '../framework/serving/json-values.js';
import { PredictionFeed, type FeedEvent } from '../framework/serving/prediction-feed.js';
import { ServingHealth } from '../framework/serving/serving-health.js';
import { WatermarkBoard } from '../framework/serving/watermark-board.js';
import { entity, featureView, float32, int64, tensor, timestamp } from '../framework/features/index.js';

const prediction = (id: number, model = 'm'): Prediction => ({
  model,
  modelVersion: '1',
  key: [id],
  output: [id],
  position: BigInt(id),
  commitTime: 0n,
  predictedAt: 0,
  latency: { receivedMs: 0, featuresMs: 0, scoredMs: 0 },
});

describe('PredictionFeed', () => {
  test('ids increase by one; the buffer keeps the newest `capacity`; replay after an id, with a gap flag', () => {
    const feed = new PredictionFeed({ capacity: 3, startId: 100 });
    feed.publish([1, 2, 3, 4, 5].map((i) => prediction(i)));
    expect(feed.lastId).toBe(105);
    expect(feed.size).toBe(3);
    const ids = (events: readonly FeedEvent[]) => events.map((e) => e.id);
    // 103…105 are buffered.
    expect(ids(feed.subscribe({ after: 103, onEvent: () => undefined }).replay)).toEqual([104, 105]);
    const sub = feed.subscribe({ after: 102, onEvent: () => undefined });
    expect([ids(sub.replay), sub.missed]).toEqual([[103, 104, 105], false]);
    const old = feed.subscribe({ after: 50, onEvent: () => undefined });
    expect([ids(old.replay), old.missed]).toEqual([[103, 104, 105], true]);
    const current = feed.subscribe({ after: 105, onEvent: () => undefined });
    expect([current.replay, current.missed]).toEqual([[], false]);
  });

  test('subscribers hear the predictions matching their filter, until they unsubscribe or the feed closes', () => {
    const feed = new PredictionFeed({ capacity: 10, startId: 0 });
    const heard: Record<string, number[]> = { all: [], m2: [], key7: [] };
    let closed = 0;
    const all = feed.subscribe({ onEvent: (e) => heard.all!.push(e.id), onClose: () => closed++ });
    feed.subscribe({ filter: { model: 'm2' }, onEvent: (e) => heard.m2!.push(e.id), onClose: () => closed++ });
    feed.subscribe({ filter: { entity: '7' }, onEvent: (e) => heard.key7!.push(e.id), onClose: () => closed++ });
    feed.publish([prediction(7), prediction(8, 'm2'), prediction(7, 'm2')]);
    expect(heard).toEqual({ all: [1, 2, 3], m2: [2, 3], key7: [1, 3] });
    all.unsubscribe();
    feed.publish([prediction(1)]);
    expect(heard.all).toEqual([1, 2, 3]);
    expect(feed.subscriberCount).toBe(2);
    feed.close();
    expect(closed).toBe(2);
    expect(feed.subscriberCount).toBe(0);
  });
});

describe('WatermarkBoard', () => {
  const view = { name: 'v', version: 1 } as never;
  test('waiters resolve true when the position is reached, false on timeout or close; the board never moves back', async () => {
    const board = new WatermarkBoard();
    expect(board.get(view)).toBeNull();
    const first = board.waitFor(view, 10n, 5_000);
    const later = board.waitFor(view, 30n, 5_000);
    const short = board.waitFor(view, 30n, 10);
    board.advance(view, 20n);
    expect(await first).toBe(true);
    expect(await short).toBe(false);
    board.advance(view, 5n);
    expect(board.get(view)).toBe(20n);
    expect(await board.waitFor(view, 20n, 0)).toBe(true);
    board.close();
    expect(await later).toBe(false);
    expect(board.waiting).toBe(0);
  });
});

describe('InProcessBus', () => {
  test('publish awaits each listener in order; close waits for the publish under way and refuses later ones', async () => {
    const bus = new InProcessBus();
    const heard: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    bus.subscribe(async () => {
      heard.push('a');
      await gate;
      heard.push('a done');
    });
    bus.subscribe(() => void heard.push('b'));
    const message: FeatureRowsMessage = { batches: [], through: 1n, receivedAt: 0 };
    const publishing = bus.publish(message);
    await Promise.resolve();
    expect(heard).toEqual(['a']);
    const closing = bus.close();
    release();
    await publishing;
    await closing;
    expect(heard).toEqual(['a', 'a done', 'b']);
    await expect(bus.publish(message)).rejects.toThrow(/closed/);
  });
});

describe('ServingHealth', () => {
  test('not ready until loaded; a critical problem makes it not ready, another degraded', () => {
    const health = new ServingHealth();
    expect(health.report()).toMatchObject({ ready: false, status: 'not_ready', reason: 'the online store is loading' });
    health.markLoaded();
    expect(health.report()).toMatchObject({ ready: true, status: 'ready', reason: null });
    health.set('sinks', 'sink down', { critical: false });
    expect(health.report()).toMatchObject({ ready: true, status: 'degraded', reason: 'sink down' });
    health.set('store', 'store down');
    expect(health.report()).toMatchObject({
      ready: false,
      status: 'not_ready',
      reason: 'store down',
      problems: { sinks: 'sink down', store: 'store down' },
    });
    health.set('store', null);
    health.set('sinks', null);
    expect(health.report().status).toBe('ready');
  });
});

describe('serving JSON forms', () => {
  const col = (name: string, type: string, array = false): ColumnSchema => ({
    name,
    type,
    array,
    typeOid: 0,
    key: true,
  });
  const schema: TableSchema = {
    table: 'public.t',
    keyColumns: ['tenant', 'id', 'flag', 'u'],
    columns: [
      col('tenant', 'text'),
      col('id', 'int8'),
      col('flag', 'bool'),
      col('u', 'uuid'),
      col('n', 'int4'),
      col('b', 'bytea'),
      col('f', 'float8'),
    ],
  };
  const keyed = entity({ name: 'k', keys: ['tenant', 'id', 'flag', 'u'] });
  const view = featureView({
    name: 'v',
    version: 1,
    entity: keyed,
    source: 't',
    features: { x: float32 },
    transform: () => ({ x: 1 }),
  });

  test("a text key is converted part by part to its columns' types", () => {
    expect(keyFromText(view, 'eu,9007199254740993,t,ABC', schema, 'params/key')).toEqual([
      'eu',
      9007199254740993n,
      true,
      'abc',
    ]);
    const error = (() => {
      try {
        keyFromText(view, 'eu,x,t,a', schema, 'params/key');
      } catch (e) {
        return e as FeatureflowError;
      }
    })()!;
    expect(error.code).toBe('FF_SERVE_BAD_REQUEST');
    expect(error.message).toBe(
      'params/key part 2 (id) must be an integer (column id is int8; beyond 2^53, give it as a string)',
    );
    expect(() => keyFromText(view, 'eu,1', schema, 'params/key')).toThrow(
      /must have 4 comma-separated parts \(tenant, id, flag, u\), got 2/,
    );
  });

  test('a JSON key takes numbers, strings and booleans; a key of a table not seen yet keeps its JSON types', () => {
    expect(keyFromJson(view, ['eu', 7, false, 'A'], schema, 'body/keys/0')).toEqual(['eu', 7n, false, 'a']);
    expect(() => keyFromJson(view, ['eu', 7, 'maybe', 'a'], schema, 'body/keys/0')).toThrow(
      /body\/keys\/0\/2 \(flag\) must be true or false/,
    );
    expect(keyFromJson(view, ['eu', 7, true, 'a'], undefined, 'body/keys/0')).toEqual(['eu', 7, true, 'a']);
    expect(keyFromText(view, 'eu,7,true,a', undefined, 'params/key')).toEqual(['eu', 7, 'true', 'a']);
  });

  test('raw rows decode to the exact forms of the ingest', () => {
    const row = rowFromJson(schema, { id: '12', n: 3, b: [1, 2, 255], f: 'NaN', tenant: null }, 'body/rows/0/t');
    expect(row).toEqual({ id: 12n, n: 3, b: Uint8Array.from([1, 2, 255]), f: NaN, tenant: null });
    expect(rowFromJson(schema, { b: '\\x00ff' }, 'r').b).toEqual(Buffer.from([0, 255]));
    expect(() => rowFromJson(schema, { n: 1.5 }, 'r')).toThrow(/r\/n must be an integer \(column n is int4\)/);
  });

  test('feature values: int64 exact, timestamps ISO, tensors flat, non-finite numbers by name', () => {
    expect(featureJson(int64, 2n ** 60n)).toBe('1152921504606846976');
    expect(featureJson(int64, 5n)).toBe(5);
    expect(featureJson(timestamp, 1_704_067_200_000_001n)).toBe('2024-01-01T00:00:00.000001Z');
    expect(featureJson(tensor('float32', [2]), Float32Array.from([1, Infinity]))).toEqual([1, 'Infinity']);
    expect(featureJson(float32, NaN)).toBe('NaN');
  });
});
