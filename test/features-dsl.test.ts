import { describe, expect, test } from 'vitest';
import {
  bool,
  compileView,
  describeChanges,
  describeView,
  durationMicros,
  entity,
  featureService,
  featureView,
  fingerprint,
  float64,
  formatMicros,
  int32,
  int64,
  tensor,
  text,
  timestamp,
  toMicros,
} from '../framework/features/index.js';
import { canonicalSource } from '../framework/features/fingerprint.js';
import { toStoredValue } from '../framework/features/feature-values.js';
import { ITEMS } from './features-helpers.js';
import { activeCustomer, customerProfile } from '../features/customers/index.js';

const item = entity({ name: 'item', keys: ['id'] });

describe('definitions', () => {
  test('invalid entities, views and services are refused with what to fix', () => {
    expect(() => entity({ name: 'x', keys: [] })).toThrow(/keys must list at least one column/);
    expect(() =>
      featureView({ name: 'Bad-Name', version: 1, entity: item, source: 'items', features: { a: float64 } }),
    ).toThrow(/feature view "Bad-Name" is invalid: name must be lower-case/);
    expect(() =>
      featureView({ name: 'v', version: 0, entity: item, source: 'items', features: { a: float64 } }),
    ).toThrow(/version must be a positive integer/);
    expect(() =>
      featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { valid_from: float64 } }),
    ).toThrow(/clashes with a history column/);
    expect(() =>
      featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { id: float64 } }),
    ).toThrow(/clashes with an entity key column/);
    expect(() =>
      featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { a: float64 }, ttl: 'soon' }),
    ).toThrow(/ttl: not a duration/);
    expect(() => tensor('float32', [28, 0])).toThrow(/positive integers/);
    const view = featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { a: float64 } });
    expect(view.source).toBe('public.items');
    expect(view.table).toBe('fv_v_v1');
    expect(() => view.select('b' as 'a')).toThrow(/has no feature "b"; it declares a/);
    expect(() => featureService({ name: 's', features: [view, view] })).toThrow(/lists view v v1 twice/);
  });

  test('feature values are checked and converted; the message says what to return', () => {
    expect(toStoredValue(int64, 5)).toBe(5n);
    expect(toStoredValue(int32, 7)).toBe(7);
    expect(() => toStoredValue(int32, 1.5)).toThrow(
      'got a number for a int32 feature; return an integer number within 32 bits',
    );
    expect(() => toStoredValue(bool, 1)).toThrow('got a number for a bool feature; return a boolean');
    expect(toStoredValue(timestamp, '2024-01-01T02:00:00+02:00')).toBe(1704067200000000n);
    expect(
      Array.from(
        toStoredValue(tensor('float32', [2, 2]), [
          [1, 2],
          [3, 4],
        ]) as Float32Array,
      ),
    ).toEqual([1, 2, 3, 4]);
    expect(() => toStoredValue(tensor('float32', [2, 2]), [1, 2, 3])).toThrow(
      /got an array of length 3 for a tensor<float32>\[2,2\] feature; return 4 numbers/,
    );
    expect(toStoredValue(text, null)).toBeNull();
  });

  test('instants and durations are exact to the microsecond', () => {
    expect(toMicros('2024-05-01T12:00:00.123456Z')).toBe(1714564800123456n);
    expect(toMicros('2024-05-01 14:00:00.123456+02:00')).toBe(1714564800123456n);
    expect(toMicros('2024-05-01T12:00:00.123456')).toBe(1714564800123456n);
    expect(toMicros('2024-05-01')).toBe(1714521600000000n);
    expect(toMicros(new Date(Date.UTC(2024, 4, 1)))).toBe(1714521600000000n);
    expect(formatMicros(1714564800123456n)).toBe('2024-05-01T12:00:00.123456Z');
    expect(() => toMicros('yesterday')).toThrow(/not an ISO 8601 instant/);
    expect(durationMicros('1h30m')).toBe(5_400_000_000n);
    expect(durationMicros(90)).toBe(90_000_000n);
    expect(() => durationMicros('3 parsecs')).toThrow(/not a duration/);
  });
});

describe('fingerprints', () => {
  test('layout does not count, code does; the changes are named', () => {
    expect(canonicalSource('(row) => ({ a: row.a, b: "x  y", })')).toBe(canonicalSource('row=>({a:row.a,b:"x  y"})'));
    expect(canonicalSource('function (r) {\n  // why\n  return r.a;\n}')).toBe('function(r){return r.a}');
    expect(canonicalSource('(r) => r.a + 1')).not.toBe(canonicalSource('(r) => r.a + 2'));
    const v1 = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { a: float64 },
      transform: (r) => ({ a: r.value as number }),
    });
    const v1b = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { a: float64, b: text },
      transform: (r) => ({ a: (r.value as number) * 2, b: 'x' }),
    });
    const v2 = featureView({
      name: 'v',
      version: 2,
      entity: item,
      source: 'items',
      features: { a: float64 },
      transform: (r) => ({ a: r.value as number }),
    });
    expect(fingerprint(describeView(v1))).toBe(fingerprint(describeView(v2)));
    expect(fingerprint(describeView(v1))).not.toBe(fingerprint(describeView(v1b)));
    expect(describeChanges(describeView(v1), describeView(v1b))).toEqual([
      'feature b (text) added',
      'transform changed (was "r=>({a:r.value})", now "r=>({a:r.value*2,b:\\"x\\"})")',
    ]);
  });
});

describe('checking a view against its table', () => {
  test('without a transform, features must be columns of a compatible type', () => {
    const ok = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64, name: text },
    });
    expect(
      compileView(ok, ITEMS).evaluate({ id: 1, value: 2.5, name: 'a' }, { op: 'c', table: 'public.items' }),
    ).toEqual([2.5, 'a']);
    const wrong = featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { name: float64 } });
    expect(() => compileView(wrong, ITEMS)).toThrow(
      'feature view v v1 declares feature name as float64 but column name of public.items is text; declare a matching type or write a transform',
    );
    const missing = featureView({ name: 'v', version: 1, entity: item, source: 'items', features: { price: float64 } });
    expect(() => compileView(missing, ITEMS)).toThrow(
      /needs the column "price", which public.items does not have \(its columns: id, value, name\)/,
    );
  });

  test('columns read by a filter, declared columns, keys and returned features are checked on a probe row', () => {
    const filter = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      filter: (r) => r.active === true,
    });
    expect(() => compileView(filter, ITEMS)).toThrow(
      /has a filter that reads column "active", which public.items does not have/,
    );
    const declared = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      columns: ['value', 'price'],
    });
    expect(() => compileView(declared, ITEMS)).toThrow(/declares in `columns` the column "price"/);
    const keyed = featureView({
      name: 'v',
      version: 1,
      entity: entity({ name: 'sku', keys: ['sku'] }),
      source: 'items',
      features: { value: float64 },
    });
    expect(() => compileView(keyed, ITEMS)).toThrow(
      /has entity sku keyed by column "sku", which public.items does not have/,
    );
    const extra = featureView({
      name: 'v',
      version: 1,
      entity: item,
      source: 'items',
      features: { value: float64 },
      transform: (r) => ({ value: r.value, other: 1 }) as never,
    });
    expect(() => compileView(extra, ITEMS)).toThrow(
      'feature view v v1 has a transform that returns feature other, which is not declared; add it to features or drop it',
    );
    const reads = compileView(
      featureView({
        name: 'v',
        version: 1,
        entity: item,
        source: 'items',
        features: { value: float64 },
        transform: (r) => ({ value: (r.value as number) + (r.name === 'x' ? 1 : 0) }),
      }),
      ITEMS,
    );
    expect([...reads.columnsRead].sort()).toEqual(['id', 'name', 'value']);
  });
});

describe('the examples', () => {
  test('the customers views fit their table, and compute features from exact PostgreSQL values', () => {
    const schema = {
      table: 'public.customers',
      keyColumns: ['id'],
      columns: [
        { name: 'id', type: 'int4', array: false, typeOid: 23, key: true },
        { name: 'name', type: 'text', array: false, typeOid: 25, key: false },
        { name: 'balance', type: 'numeric', array: false, typeOid: 1700, key: false },
        { name: 'active', type: 'bool', array: false, typeOid: 16, key: false },
        { name: 'signed_up', type: 'timestamptz', array: false, typeOid: 1184, key: false },
      ],
    };
    const row = { id: 1, name: 'Ada', balance: '-12.50', active: true, signed_up: '2024-01-01T00:00:00.000001Z' };
    const ctx = { op: 'c' as const, table: 'public.customers' };
    expect(compileView(customerProfile, schema).evaluate(row, ctx)).toEqual([-12.5, true, 1704067200000001n]);
    expect(compileView(activeCustomer, schema).evaluate(row, ctx)).toEqual([3, false, 'Ada']);
    expect(compileView(activeCustomer, schema).evaluate({ ...row, active: false }, ctx)).toBeNull();
  });
});
