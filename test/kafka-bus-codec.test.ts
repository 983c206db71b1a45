import { describe, expect, test } from 'vitest';
import { entity, featureView } from '../framework/features/index.js';
import { entityId } from '../framework/features/entity-key.js';
import type { FeatureRow } from '../framework/features/feature-rows.js';
import { FeatureRowCodec } from '../stores/kafka/feature-row-codec.js';
import { resolveKafkaBusConfig } from '../stores/kafka/kafka-bus-config.js';
import { topicOf } from '../stores/kafka/kafka-bus.js';
import { EVERY_TYPE_FEATURES } from './features-helpers.js';

// The Kafka bus's record of a feature row: every value type comes back exact (int64 and timestamps
// beyond 2^53, tensors bit for bit, NaN, ±Infinity, -0, nulls), and so do keys JSON cannot type.

const thing = entity({ name: 'thing', keys: ['id', 'tag', 'raw'] });
const things = featureView({
  name: 'things',
  version: 3,
  entity: thing,
  source: 'public.things',
  features: EVERY_TYPE_FEATURES,
});

function row(values: FeatureRow['values'], op: FeatureRow['op'] = 'u'): FeatureRow {
  return {
    op,
    key: [2n ** 62n + 1n, 'a,"b"', new Uint8Array([0, 255, 7])],
    values,
    position: 2n ** 63n + 5n,
    commitPosition: 2n ** 63n + 9n,
    commitTime: 1_733_000_000_123_456n,
  };
}

describe('the Kafka bus record of a feature row', () => {
  test('round-trips every feature type and key exactly', () => {
    const codec = new FeatureRowCodec(things);
    const original = row([
      Math.fround(0.1),
      -0,
      -2147483648,
      2n ** 63n - 1n,
      false,
      'é "quoted" \u0000',
      -(2n ** 60n),
      new Float32Array([Number.NaN, -0, Math.fround(1e-40), Number.POSITIVE_INFINITY, 1, 2]),
      new Float64Array([Number.MIN_VALUE, Number.NEGATIVE_INFINITY, 0.1 + 0.2, -1]),
      new Int32Array([-1, 2147483647, -2147483648, 0]),
    ]);
    const record = codec.encode(original);
    // The record's key is the entity's identity, as every component of featureflow names entities.
    expect(record.key).toBe(entityId(original.key));
    const back = codec.decode(Buffer.from(record.value), record.headers);
    expect(back).toEqual(original);
    expect(Object.is(back.values![1], -0)).toBe(true);
    const image = back.values![7] as Float32Array;
    expect(Buffer.from(image.buffer)).toEqual(Buffer.from((original.values![7] as Float32Array).buffer));
    expect(back.values![8]).toBeInstanceOf(Float64Array);
    expect(back.values![9]).toBeInstanceOf(Int32Array);
  });

  test('a deletion and nulls come back as they went; a foreign record is refused', () => {
    const codec = new FeatureRowCodec(things);
    const deletion = row(null, 'd');
    const record = codec.encode(deletion);
    expect(codec.decode(Buffer.from(record.value), record.headers)).toEqual(deletion);
    const nulls = row(Array.from({ length: 10 }, () => null));
    const again = codec.encode(nulls);
    expect(codec.decode(Buffer.from(again.value), again.headers)).toEqual(nulls);
    expect(() => codec.decode(Buffer.from('{"op":"u"}'), record.headers)).toThrow(/not a featureflow feature row/);
    expect(() => codec.decode(Buffer.from(record.value), {})).toThrow(/ff-position/);
  });

  test('topics and config', () => {
    expect(topicOf('shop', things)).toBe('shop.things.v3');
    expect(resolveKafkaBusConfig({ brokers: ['k:9092'] })).toMatchObject({
      topicPrefix: 'featureflow',
      group: 'featureflow-serve',
      partitions: 6,
      sessionTimeoutMs: 10_000,
    });
    expect(() => resolveKafkaBusConfig({ topicPrefix: 'a b', partitions: 0, group: '', sessionTimeoutMs: 10 })).toThrow(
      /topicPrefix must be.*group must be.*partitions must be.*sessionTimeoutMs must be/,
    );
  });
});
