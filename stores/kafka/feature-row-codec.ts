/**
 * One feature row as a Kafka record of the bus:
 *
 * - key: the entity's identity ({@link entityId}: `42`, or the JSON values of a composite key), so
 *   Kafka's default partitioner keeps an entity on one partition, in order;
 * - value: JSON `{"o": op, "k": [key values], "v": [features] | null}`. Key values are tagged where
 *   JSON cannot tell them apart: a bigint `{"i": "<decimal>"}`, bytes `{"x": "<hex>"}`, a non-finite
 *   number `{"f": "NaN" | "Infinity" | "-Infinity"}`, -0 `{"f": "-0"}`. Features follow the view's
 *   declared types: int64 and timestamp (µs) as decimal strings, tensors as base64 of their
 *   little-endian elements (exact, ~1.33 bytes a byte), floats as numbers (non-finite ones as strings);
 * - headers: `ff-position` (the change), `ff-commit-position` (its transaction's commit) and
 *   `ff-commit-time` (µs since the Unix epoch), decimal.
 *
 * A marker record (null key, empty value, header `ff-through`) says that the partition holds every
 * row committed up to that position.
 */
import { entityId } from '../../framework/features/entity-key.js';
import type { FeatureRow } from '../../framework/features/feature-rows.js';
import type { FeatureType } from '../../framework/features/feature-types.js';
import type { StoredFeatureValue } from '../../framework/features/feature-values.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import type { Op, Position, Value } from '../../framework/types.js';

export const POSITION_HEADER = 'ff-position';
export const COMMIT_POSITION_HEADER = 'ff-commit-position';
export const COMMIT_TIME_HEADER = 'ff-commit-time';
export const THROUGH_HEADER = 'ff-through';

const OPS: ReadonlySet<string> = new Set(['r', 'c', 'u', 'd', 't']);

/** What a record carries, before kafkajs sends it. */
export interface EncodedRow {
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
}

function keyValue(v: Value): unknown {
  if (typeof v === 'bigint') return { i: v.toString() };
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return Object.is(v, -0) ? { f: '-0' } : v;
    return { f: String(v) };
  }
  if (v instanceof Uint8Array) return { x: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (Array.isArray(v)) return v.map(keyValue);
  return v;
}

function keyValueOf(json: unknown): Value {
  if (Array.isArray(json)) return json.map(keyValueOf);
  if (json !== null && typeof json === 'object') {
    const tagged = json as { i?: string; x?: string; f?: string };
    if (tagged.i !== undefined) return BigInt(tagged.i);
    if (tagged.x !== undefined) return new Uint8Array(Buffer.from(tagged.x, 'hex'));
    if (tagged.f !== undefined) return tagged.f === '-0' ? -0 : Number(tagged.f);
    throw new TypeError(`an entity key value ${JSON.stringify(json)} has no known tag`);
  }
  return json as Value;
}

function featureJson(type: FeatureType, v: StoredFeatureValue): unknown {
  if (v === null) return null;
  if (type.kind === 'tensor') {
    const a = v as Float32Array | Float64Array | Int32Array;
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (typeof v === 'number' && Object.is(v, -0)) return '-0';
  return v;
}

function featureOf(type: FeatureType, json: unknown): StoredFeatureValue {
  if (json === null) return null;
  if (type.kind === 'tensor') {
    const bytes = Buffer.from(json as string, 'base64');
    const Ctor = type.dtype === 'float32' ? Float32Array : type.dtype === 'float64' ? Float64Array : Int32Array;
    // Copied into an aligned buffer of its own: Buffer.from may return a slice of a shared pool.
    const out = new Ctor(bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  switch (type.dtype) {
    case 'int64':
    case 'timestamp':
      return BigInt(json as string);
    case 'float32':
    case 'float64':
      return typeof json === 'string' ? (json === '-0' ? -0 : Number(json)) : (json as number);
    default:
      return json as StoredFeatureValue;
  }
}

/** Encodes and decodes the rows of one view version. */
export class FeatureRowCodec {
  private readonly types: readonly FeatureType[];

  constructor(readonly view: FeatureView) {
    this.types = Object.values(view.features);
  }

  encode(row: FeatureRow): EncodedRow {
    const values = row.values === null ? null : row.values.map((v, i) => featureJson(this.types[i]!, v));
    return {
      key: entityId(row.key),
      value: JSON.stringify({ o: row.op, k: row.key.map(keyValue), v: values }),
      headers: {
        [POSITION_HEADER]: row.position.toString(),
        [COMMIT_POSITION_HEADER]: row.commitPosition.toString(),
        [COMMIT_TIME_HEADER]: row.commitTime.toString(),
      },
    };
  }

  /** The row of a record (its value and headers); throws a TypeError saying what is wrong. */
  decode(value: Buffer, headers: Readonly<Record<string, unknown>>): FeatureRow {
    const parsed = JSON.parse(value.toString('utf8')) as { o?: unknown; k?: unknown; v?: unknown };
    if (typeof parsed.o !== 'string' || !OPS.has(parsed.o) || !Array.isArray(parsed.k))
      throw new TypeError('the record is not a featureflow feature row (no op or key)');
    let values: StoredFeatureValue[] | null = null;
    if (parsed.v !== null) {
      if (!Array.isArray(parsed.v) || parsed.v.length !== this.types.length)
        throw new TypeError(
          `the record has ${String((parsed.v as unknown[])?.length)} features, the view ${this.types.length}`,
        );
      values = parsed.v.map((v, i) => featureOf(this.types[i]!, v));
    }
    return {
      op: parsed.o as Op,
      key: parsed.k.map(keyValueOf),
      values,
      position: headerPosition(headers, POSITION_HEADER),
      commitPosition: headerPosition(headers, COMMIT_POSITION_HEADER),
      commitTime: headerPosition(headers, COMMIT_TIME_HEADER),
    };
  }
}

/** A decimal header's value as a bigint. */
export function headerPosition(headers: Readonly<Record<string, unknown>>, name: string): Position {
  const raw = headers[name];
  const text = Buffer.isBuffer(raw) ? raw.toString('latin1') : typeof raw === 'string' ? raw : undefined;
  if (text === undefined || !/^\d+$/.test(text)) throw new TypeError(`the record lacks a decimal ${name} header`);
  return BigInt(text);
}
