import type * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { formatPosition, parsePosition } from '../framework/types.js';
import { FeatureRegistry } from '../framework/features/feature-registry.js';
import { Materializer } from '../framework/features/materialize.js';
import { buildHttpApp, type HttpServer } from '../framework/serving/http-app.js';
import { InProcessBus } from '../framework/serving/in-process-bus.js';
import { OnlineUpdater } from '../framework/serving/online-updater.js';
import { ServingContext } from '../framework/serving/serving-context.js';
import { memory } from '../stores/memory/index.js';
import { waitFor } from './helpers.js';
import {
  Changes,
  closeTo,
  extras,
  items,
  LABELS,
  reference,
  SCHEMAS,
  saveTestModel,
  startServing,
  type Serving,
} from './serving-fixtures.js';

// The serving API over real HTTP on 127.0.0.1 (fetch), on the real online path: memory online store,
// TF.js scorer in worker threads. Every route, every error path, the stream with filters and
// reconnects, health before and after the load, metrics and the OpenAPI document.

const TOKEN = 'test-token';
const BODY_LIMIT = 8_192;

let model: tf.LayersModel;
let s: Serving;
let http: HttpServer;
let base: string;
const changes = new Changes();

/** A request with the bearer token (unless `token: null`), JSON in and out. */
async function call(
  method: string,
  path: string,
  options: { body?: unknown; token?: string | null; raw?: string } = {},
) {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.raw !== undefined || options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = options.raw ?? JSON.stringify(options.body);
  }
  const response = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text, headers: response.headers };
}

/** One Server-Sent Events connection, parsed as it arrives. */
async function openStream(query = '', headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const response = await fetch(`${base}/predictions/stream${query}`, {
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
    signal: abort.signal,
  });
  const events: { id?: string; event?: string; data?: any }[] = [];
  const comments: string[] = [];
  let ended = false;
  const reading = (async () => {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const event: { id?: string; event?: string; data?: any } = {};
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) event.id = line.slice(4);
            else if (line.startsWith('event: ')) event.event = line.slice(7);
            else if (line.startsWith('data: ')) event.data = JSON.parse(line.slice(6));
          }
          if (event.event) events.push(event);
        }
      }
    } catch {
      // Aborted by the test.
    }
    ended = true;
  })();
  return {
    response,
    events,
    comments,
    get ended() {
      return ended;
    },
    predictions: () => events.filter((e) => e.event === 'prediction'),
    async close() {
      abort.abort();
      await reading;
    },
  };
}

beforeAll(async () => {
  let dir: string;
  ({ model, dir } = await saveTestModel());
  s = await startServing(memory().create(), dir, { start: false });
  http = await buildHttpApp(s.context, {
    bearerToken: TOKEN,
    bodyLimit: BODY_LIMIT,
    heartbeatMs: 100,
    maxWaitMs: 5_000,
    defaultWaitMs: 1_000,
  });
  const address = await http.listen({ port: 0 });
  expect(address.host).toBe('127.0.0.1');
  base = address.url;
});

afterAll(async () => {
  await http?.close();
  await s?.stop();
});

let loaded: Promise<void> | undefined;
/**
 * Starts the online store and publishes the data the tests read (extras 1…3, items 1…4; item 4 has
 * no extras), once: the health test looks at the server before, every other test (run alone too)
 * finds it done.
 */
function loadData(): Promise<void> {
  loaded ??= (async () => {
    await s.updater.start();
    await s.publish([1, 2, 3].map((id) => changes.extra('c', id, id / 10)));
    await s.publish([1n, 2n, 3n, 4n].map((id) => changes.item('c', id, Number(id), [Number(id), 0.5, -1], `n${id}`)));
    await s.loop.idle();
  })();
  return loaded;
}

describe('serving API', () => {
  beforeEach(async (context) => {
    if (!context.task.name.startsWith('/health is 503')) await loadData();
  });

  test('/health is 503 while the online store loads, 200 once loaded; it needs no token', async () => {
    const before = await call('GET', '/health', { token: null });
    expect(before.status).toBe(503);
    expect(before.json).toMatchObject({
      status: 'not_ready',
      ready: false,
      reason: 'the online store is loading',
      loaded: false,
    });
    await loadData();
    const after = await call('GET', '/health', { token: null });
    expect(after.status).toBe(200);
    expect(after.json).toMatchObject({
      status: 'ready',
      ready: true,
      reason: null,
      loaded: true,
      model: { name: 'scored-model', version: 'test-1' },
    });
    const health = await call('GET', '/health');
    expect(health.json.watermarks).toEqual({
      'items@1': formatPosition(changes.position),
      'extras@1': formatPosition(changes.position),
    });
  });

  test('GET /features/:view/:key answers values by feature name, status, position and watermark', async () => {
    const { status, json } = await call('GET', '/features/items/2');
    expect(status).toBe(200);
    expect(json).toMatchObject({
      view: 'items',
      version: 1,
      key: [2],
      status: 'ok',
      values: { a: 2, v: [2, 0.5, -1], note: 'n2' },
    });
    expect(parsePosition(json.position)).toBeGreaterThan(0n);
    expect(json.watermark).toBe(formatPosition(changes.position));
    expect(json.commitTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // With the version named.
    expect((await call('GET', '/features/extras/3?version=1')).json).toMatchObject({
      values: { c: Math.fround(0.3) },
      status: 'ok',
    });
  });

  test('POST /features answers every key with its status; an int8 key given as text or number finds the entity', async () => {
    const { status, json } = await call('POST', '/features', { body: { view: 'items', keys: [[1], ['3'], [99]] } });
    expect(status).toBe(200);
    expect(json.watermark).toBe(formatPosition(changes.position));
    expect(json.results.map((r: any) => [r.key[0], r.status, r.values?.a ?? null])).toEqual([
      [1, 'ok', 1],
      [3, 'ok', 3],
      [99, 'missing', null],
    ]);
    expect(json.results[2]).toMatchObject({ position: null, commitTime: null, values: null });
  });

  test('a deleted entity is 404 with the position of its deletion; an expired one says expired', async () => {
    const deletion = changes.delete('public.items', 4n);
    await s.publish([deletion]);
    const gone = await call('GET', '/features/items/4');
    expect(gone.status).toBe(404);
    expect(gone.json).toMatchObject({
      code: 'FF_SERVE_NOT_FOUND',
      status: 'missing',
      position: formatPosition(deletion.position),
    });
    expect(gone.json.message).toMatch(/holds no entity with key 4/);
    await s.publish([changes.extra('c', 8, 0.8, BigInt(Date.now() - 7_200_000) * 1000n)]);
    const old = await call('GET', '/features/extras/8');
    expect(old.status).toBe(200);
    expect(old.json).toMatchObject({ status: 'expired', values: null });
  });

  test('read-after-write: minPosition waits for the write; past the timeout it is 504 naming the view and the position', async () => {
    const update = changes.item('u', 1n, 11, [1, 1, 1], 'eleven');
    const asked = call('GET', `/features/items/1?minPosition=${formatPosition(update.position)}&timeoutMs=5000`);
    await new Promise((r) => setTimeout(r, 50));
    await s.publish([update]);
    const { status, json } = await asked;
    expect(status).toBe(200);
    expect(json).toMatchObject({ values: { a: 11, note: 'eleven' }, position: formatPosition(update.position) });
    expect(parsePosition(json.watermark)).toBeGreaterThanOrEqual(update.position);

    const future = formatPosition(changes.position + 0x1000n);
    const late = await call('GET', `/features/items/1?minPosition=${future}&timeoutMs=100`);
    expect(late.status).toBe(504);
    expect(late.json).toMatchObject({ code: 'FF_SERVE_TIMEOUT', view: 'items@1', minPosition: future });
    expect(late.json.message).toMatch(new RegExp(`view items@1 did not reach position ${future} within 100 ms`));
    const latePost = await call('POST', `/features?minPosition=${future}&timeoutMs=50`, {
      body: { view: 'items', keys: [[1]] },
    });
    expect(latePost.status).toBe(504);
    const latePredict = await call('POST', `/predict?minPosition=${future}&timeoutMs=50`, { body: { keys: [[1]] } });
    expect(latePredict.status).toBe(504);
  });

  test('400 names the field: bad key parts, wrong types, missing and unknown fields, bad positions, a wait over the bound', async () => {
    const cases: [string, string, unknown, RegExp, string][] = [
      ['GET', '/features/items/abc', undefined, /params\/key part 1 \(id\) must be an integer/, 'params/key'],
      [
        'GET',
        '/features/items/1,2',
        undefined,
        /params\/key must have 1 comma-separated part \(id\), got 2/,
        'params/key',
      ],
      [
        'GET',
        '/features/items/1?timeoutMs=20000',
        undefined,
        /querystring\/timeoutMs must be <= 5000/,
        'querystring/timeoutMs',
      ],
      [
        'GET',
        '/features/items/1?minPosition=nope',
        undefined,
        /querystring\/minPosition must match pattern/,
        'querystring/minPosition',
      ],
      [
        'GET',
        '/features/items/1?colour=red',
        undefined,
        /querystring\/colour is not a known field/,
        'querystring/colour',
      ],
      ['POST', '/features', { view: 'items' }, /body must have required property 'keys'/, 'body/keys'],
      [
        'POST',
        '/features',
        { view: 'items', keys: [[1]], extra: true },
        /body\/extra is not a known field/,
        'body/extra',
      ],
      [
        'POST',
        '/features',
        { view: 'items', keys: [[{ id: 1 }]] },
        /body\/keys\/0\/0 must be string,number,boolean/,
        'body/keys/0/0',
      ],
      ['POST', '/features', { view: 'items', keys: [] }, /body\/keys must NOT have fewer than 1 items/, 'body/keys'],
      [
        'POST',
        '/features',
        { view: 'items', keys: [['x']] },
        /body\/keys\/0\/0 \(id\) must be an integer/,
        'body/keys/0/0',
      ],
      [
        'POST',
        '/features',
        { view: 'items', keys: [[1, 2]] },
        /body\/keys\/1 must have 1 value \(id\), got 2|body\/keys\/0 must have 1 value \(id\), got 2/,
        'body/keys/0',
      ],
      ['POST', '/features', { view: 'Items!', keys: [[1]] }, /body\/view must match pattern/, 'body/view'],
      ['POST', '/predict', {}, /body must have either keys or rows/, 'body'],
      ['POST', '/predict', { keys: [[1]], rows: [{ items: { id: 1 } }] }, /body must have either keys or rows/, 'body'],
    ];
    for (const [method, path, body, message, field] of cases) {
      const response = await call(method, path, body === undefined ? {} : { body });
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(response.json.code).toBe('FF_SERVE_BAD_REQUEST');
      expect(response.json.message).toMatch(message);
      expect(response.json.field).toBe(field);
    }
    const broken = await call('POST', '/features', { raw: '{"view": "items", "keys": [[1]' });
    expect(broken.status).toBe(400);
    expect(broken.json).toMatchObject({ code: 'FF_SERVE_BAD_REQUEST', field: 'body' });
  });

  test('404 for an unknown view, key or route', async () => {
    const view = await call('GET', '/features/nope/1');
    expect(view.status).toBe(404);
    expect(view.json).toMatchObject({ code: 'FF_SERVE_NOT_FOUND', view: 'nope' });
    expect(view.json.message).toMatch(/no feature view nope is served \(served: items v1, extras v1\)/);
    expect((await call('GET', '/features/items/1?version=7')).status).toBe(404);
    expect((await call('POST', '/features', { body: { view: 'nope', keys: [[1]] } })).status).toBe(404);
    const key = await call('GET', '/features/items/12345');
    expect(key.status).toBe(404);
    expect(key.json).toMatchObject({ code: 'FF_SERVE_NOT_FOUND', status: 'missing', position: null });
    const route = await call('GET', '/nothing-here');
    expect(route.status).toBe(404);
    expect(route.json.message).toMatch(/no route GET \/nothing-here/);
  });

  test('413 for a body over the limit; 401 without the token or with another', async () => {
    const big = await call('POST', '/features', {
      body: { view: 'items', keys: Array.from({ length: 2_000 }, (_, i) => [i]) },
    });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ code: 'FF_SERVE_TOO_LARGE' });
    expect(big.json.message).toMatch(`larger than ${BODY_LIMIT} bytes`);
    const none = await call('GET', '/features/items/1', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.json).toMatchObject({ code: 'FF_SERVE_UNAUTHORIZED' });
    const wrong = await call('POST', '/predict', { token: 'guess', body: { keys: [[1]] } });
    expect(wrong.status).toBe(401);
    expect(wrong.json.message).toMatch(/not the configured one/);
    expect((await call('GET', '/metrics', { token: null })).status).toBe(401);
    // Refused before the body is read: a large body without the token is 401 too.
    expect(
      (
        await call('POST', '/features', {
          token: null,
          body: { view: 'items', keys: Array.from({ length: 2_000 }, (_, i) => [i]) },
        })
      ).status,
    ).toBe(401);
  });

  test('POST /predict by keys: outputs equal model.predict, with positions; an entity lacking a feature says which', async () => {
    const { status, json } = await call('POST', '/predict', { body: { keys: [[2], [3], [4], [77]] } });
    expect(status).toBe(200);
    expect(json).toMatchObject({ model: 'scored-model', modelVersion: 'test-1' });
    expect(Object.keys(json.watermarks)).toEqual(['items@1', 'extras@1']);
    const [two, three, four, none] = json.predictions;
    expect(two.status).toBe('ok');
    const want = reference(model, [2, 2, 0.5, -1, 0.2]);
    expect(closeTo(two.output, want)).toBe(true);
    expect(two.argmax).toBe(want.indexOf(Math.max(...want)));
    expect(two.label).toBe(LABELS[two.argmax]);
    expect(Object.keys(two.positions)).toEqual(['items@1', 'extras@1']);
    expect(two.position).toBe(
      [two.positions['items@1'], two.positions['extras@1']].sort((a, b) =>
        parsePosition(a) < parsePosition(b) ? 1 : -1,
      )[0],
    );
    expect(closeTo(three.output, reference(model, [3, 3, 0.5, -1, 0.3]))).toBe(true);
    // Item 4 was deleted: its items features are missing.
    expect(four).toMatchObject({ status: 'missing', missing: ['items.a', 'items.v', 'extras.c'] });
    expect(four.output).toBeUndefined();
    expect(none).toMatchObject({ status: 'missing', position: null, positions: { 'items@1': null, 'extras@1': null } });
  });

  test("POST /predict by raw rows runs the views' transforms: equal to model.predict on the transformed features", async () => {
    const rows = [
      { items: { id: 50, a: 0.25, v0: 1, v1: 2, v2: 3, note: null }, 'public.extras': { id: 50, c: 0.75 } },
      { 'public.items': { id: '9007199254740993', a: -1, v0: 0, v1: 0, v2: 1 }, extras: { id: 51, c: 'Infinity' } },
    ];
    const { status, json } = await call('POST', '/predict', { body: { rows } });
    expect(status).toBe(200);
    expect(json.watermarks).toBeNull();
    expect(json.predictions[0]).toMatchObject({
      key: [50],
      status: 'ok',
      position: null,
      positions: { 'items@1': null, 'extras@1': null },
    });
    expect(closeTo(json.predictions[0].output, reference(model, [0.25, 1, 2, 3, 0.75]))).toBe(true);
    // An int8 key beyond 2^53 comes back exact, as text; non-finite outputs as their names.
    expect(json.predictions[1].key).toEqual(['9007199254740993']);
    expect(
      json.predictions[1].output.every(
        (x: unknown) => typeof x === 'number' || ['NaN', 'Infinity', '-Infinity'].includes(x as string),
      ),
    ).toBe(true);

    const lacking = await call('POST', '/predict', {
      body: { rows: [{ items: { id: 1, a: 1, v0: 1, v1: 1, v2: 1 } }] },
    });
    expect(lacking.status).toBe(400);
    expect(lacking.json).toMatchObject({ code: 'FF_SERVE_BAD_REQUEST', field: 'body/rows/0' });
    expect(lacking.json.message).toMatch(/body\/rows\/0 lacks a row of public\.extras \(read by view extras\)/);
    const unknown = await call('POST', '/predict', {
      body: { rows: [{ items: { id: 1 }, extras: { id: 1 }, orders: { id: 1 } }] },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toMatch(/body\/rows\/0\/orders is not a source table of feature service scored/);
    const column = await call('POST', '/predict', {
      body: { rows: [{ items: { id: 1, colour: 'red' }, extras: { id: 1 } }] },
    });
    expect(column.json.message).toMatch(/body\/rows\/0\/items\/colour is not a column of public\.items/);
    const type = await call('POST', '/predict', {
      body: { rows: [{ items: { id: 1, a: 'x', v0: 1, v1: 1, v2: 1 }, extras: { id: 1, c: 1 } }] },
    });
    expect(type.json.message).toMatch(/body\/rows\/0\/items\/a must be a number \(column a is float8\)/);
    // A null feature: the example cannot be scored, and says which.
    const nulls = await call('POST', '/predict', {
      body: { rows: [{ items: { id: 5, a: null, v0: 1, v1: 1, v2: 1 }, extras: { id: 5, c: 1 } }] },
    });
    expect(nulls.json.predictions[0]).toMatchObject({ status: 'missing', missing: ['items.a'] });
    // No entity key: the view rejects the row.
    const keyless = await call('POST', '/predict', {
      body: { rows: [{ items: { a: 1, v0: 1, v1: 1, v2: 1 }, extras: { id: 5, c: 1 } }] },
    });
    expect(keyless.status).toBe(400);
    expect(keyless.json.message).toMatch(/body\/rows\/0\/items was rejected by view items v1: row has no entity key/);
  });

  test('GET /predictions/stream: live events, filters by model and key, Last-Event-ID replay, heartbeats', async () => {
    const all = await openStream();
    const onlyTwo = await openStream('?key=2');
    const otherModel = await openStream('?model=another');
    expect(all.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const updates = [
      changes.item('u', 1n, 1.5, [0, 0, 0]),
      changes.item('u', 2n, 2.5, [1, 1, 1]),
      changes.item('u', 3n, 3.5, [2, 2, 2]),
    ];
    await s.publish(updates);
    await waitFor('three predictions on the stream', () => all.predictions().length === 3, 10_000);
    await waitFor('one prediction of entity 2', () => onlyTwo.predictions().length === 1, 10_000);
    const events = all.predictions();
    expect(events.map((e) => e.data.key[0])).toEqual([1, 2, 3]);
    expect(events.map((e) => e.data.position)).toEqual(updates.map((u) => formatPosition(u.position)));
    expect(Number(events[1]!.id)).toBe(Number(events[0]!.id) + 1);
    expect(events[0]!.data).toMatchObject({ model: 'scored-model', modelVersion: 'test-1', id: Number(events[0]!.id) });
    expect(closeTo(events[1]!.data.output, reference(model, [2.5, 1, 1, 1, 0.2]))).toBe(true);
    expect(Object.keys(events[0]!.data.latency)).toEqual(['receivedMs', 'featuresMs', 'scoredMs']);
    expect(onlyTwo.predictions()[0]!.data.position).toBe(formatPosition(updates[1]!.position));
    await waitFor('a heartbeat', () => all.comments.includes('heartbeat'), 5_000);
    expect(otherModel.predictions()).toEqual([]);

    // Reconnect after the first event: the two after it are replayed, then live ones follow.
    const resumed = await openStream('', { 'last-event-id': events[0]!.id! });
    await waitFor('the replay', () => resumed.predictions().length === 2, 5_000);
    expect(resumed.predictions().map((e) => e.id)).toEqual([events[1]!.id, events[2]!.id]);
    await s.publish([changes.item('u', 3n, 4.5, [3, 3, 3])]);
    await waitFor('the live event after the replay', () => resumed.predictions().length === 3, 10_000);
    // A Last-Event-ID older than the buffer (an earlier process): a gap event, then what is buffered.
    const old = await openStream('?key=3', { 'last-event-id': '1' });
    await waitFor(
      'the gap and the replay',
      () => old.events.some((e) => e.event === 'gap') && old.predictions().length >= 2,
      5_000,
    );
    expect(old.predictions().every((e) => e.data.key[0] === 3)).toBe(true);

    const badKey = await call('GET', '/predictions/stream?key=x');
    expect(badKey.status).toBe(400);
    expect(badKey.json.field).toBe('querystring/key');
    const badId = await fetch(`${base}/predictions/stream`, {
      headers: { authorization: `Bearer ${TOKEN}`, 'last-event-id': 'abc' },
    });
    expect(badId.status).toBe(400);
    expect(((await badId.json()) as { message: string }).message).toMatch(/headers\/last-event-id must match pattern/);
    for (const stream of [all, onlyTwo, otherModel, resumed, old]) await stream.close();
    await waitFor('the streams to be released', () => s.context.feed.subscriberCount === 0, 5_000);
  });

  test('GET /metrics has the named series', async () => {
    // The last prediction of the test before may still be on its way to the sinks: the loop drains.
    await waitFor(
      'the scoring loop to drain',
      async () => (await call('GET', '/metrics')).text.includes('featureflow_scoring_queue_rows 0'),
      5_000,
    );
    const { status, text, headers } = await call('GET', '/metrics');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^text\/plain/);
    for (const series of [
      'featureflow_source_lag_seconds',
      'featureflow_changes_total{view="items",version="1"}',
      'featureflow_online_entities{view="items",version="1"} 3',
      'featureflow_prediction_latency_seconds_bucket{le="0.005",stage="scored"}',
      'featureflow_prediction_latency_seconds_count{stage="received"}',
      'featureflow_predictions_total{model="scored-model"}',
      'featureflow_predictions_skipped_total{reason="missing_feature"}',
      'featureflow_scorer_queue 0',
      'featureflow_scoring_queue_rows 0',
      'featureflow_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/features/:view/:key",status_code="200"}',
      'featureflow_http_request_duration_seconds_count{method="POST",route="/predict",status_code="400"}',
    ]) {
      expect(text, series).toContain(series);
    }
  });

  test('GET /model describes the model, its entity and every feature of the views it reads', async () => {
    const { status, json } = await call('GET', '/model');
    expect(status).toBe(200);
    expect(json).toEqual({
      name: 'scored-model',
      version: 'test-1',
      service: 'scored',
      entity: { name: 'item', keys: ['id'] },
      inputs: [
        {
          view: 'items',
          version: 1,
          selected: ['a', 'v'],
          features: {
            a: { kind: 'scalar', dtype: 'float32' },
            v: { kind: 'tensor', dtype: 'float32', shape: [3] },
            note: { kind: 'scalar', dtype: 'text' },
          },
        },
        { view: 'extras', version: 1, selected: ['c'], features: { c: { kind: 'scalar', dtype: 'float32' } } },
      ],
    });
    expect((await call('GET', '/model', { token: null })).status).toBe(401);
  });

  test('the live page loads without the token (it holds no data), with a policy that keeps it to this server', async () => {
    for (const [path, type] of [
      ['/', 'text/html'],
      ['/page/page.js', 'text/javascript'],
      ['/page/page.css', 'text/css'],
    ] as const) {
      const { status, text, headers } = await call('GET', path, { token: null });
      expect([path, status, headers.get('content-type')]).toEqual([path, 200, `${type}; charset=utf-8`]);
      expect(headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
      expect(text).not.toContain(TOKEN);
    }
    expect((await call('GET', '/page/other.js', { token: null })).status).toBe(401);
  });

  test('the OpenAPI document lists every route with its schemas', async () => {
    const { status, json } = await call('GET', '/openapi.json');
    expect(status).toBe(200);
    expect(json.openapi).toBe('3.1.0');
    expect(Object.keys(json.paths).sort()).toEqual([
      '/features',
      '/features/{view}/{key}',
      '/health',
      '/metrics',
      '/model',
      '/predict',
      '/predictions/stream',
    ]);
    expect(Object.keys(json.paths['/features/{view}/{key}'].get.responses)).toEqual(
      expect.arrayContaining(['200', '4XX', '5XX']),
    );
    expect(json.paths['/predict'].post.requestBody.content['application/json'].schema.properties).toHaveProperty(
      'rows',
    );
    expect(json.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
    expect(json.security).toEqual([{ bearer: [] }]);
    expect(json.paths['/health'].get.security).toEqual([]);
  });

  test('close() drains: open streams end, a request under way is answered, new connections are refused', async () => {
    const stream = await openStream();
    const future = formatPosition(changes.position + 0x10n);
    const pending = call('GET', `/features/items/1?minPosition=${future}&timeoutMs=3000`);
    await new Promise((r) => setTimeout(r, 50));
    const closing = http.close();
    await waitFor('the stream to end', () => stream.ended, 5_000);
    await s.publish([changes.item('u', 1n, 100, [0, 0, 0])]);
    const answered = await pending;
    expect(answered.status).toBe(200);
    expect(answered.json.values.a).toBe(100);
    await closing;
    await expect(fetch(`${base}/health`)).rejects.toThrow();
    expect(http.close()).toBe(closing);
  });
});

test('without a model, features are served and predictions are 404', async () => {
  const registry = new FeatureRegistry({ views: [items, extras] });
  const materializer = new Materializer(registry);
  materializer.addSchemas(SCHEMAS);
  const store = memory().create();
  await store.open();
  const context = new ServingContext({ store, registry, materializer, metrics: { defaultMetrics: false } });
  const updater = new OnlineUpdater(context);
  await updater.start();
  const server = await buildHttpApp(context);
  const { url } = await server.listen({ port: 0 });
  try {
    const bus = new InProcessBus();
    bus.subscribe(updater.listener);
    const rows = new Changes();
    const { batches } = materializer.materializeChanges([rows.item('c', 5n, 1, [1, 2, 3])]);
    await bus.publish({ batches, through: rows.position, receivedAt: Date.now() });
    const features = await fetch(`${url}/features/items/5`);
    expect(features.status).toBe(200);
    const predict = await fetch(`${url}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"keys":[[5]]}',
    });
    expect(predict.status).toBe(404);
    expect(((await predict.json()) as { message: string }).message).toMatch(/no model is configured/);
    expect((await fetch(`${url}/predictions/stream`)).status).toBe(404);
    expect(((await (await fetch(`${url}/health`)).json()) as { model: unknown }).model).toBeNull();
  } finally {
    await server.close();
    await updater.stop();
    context.close();
    await store.close();
  }
});
