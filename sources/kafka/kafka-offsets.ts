import type { Position } from '../../framework/types.js';

/**
 * Where a consumer of several topic-partitions stands: per `topic` and partition, the offset of the
 * next record to read. As one opaque {@link Position}, the sum of those offsets: every record read
 * raises exactly one of them, so the sum grows with each record in the order they were read (a later
 * change of a row, on its row's partition, always has the larger position), and the change log's
 * checkpoint is the sum at the end of the last durable batch. The sum alone cannot say where each
 * partition stands: the offsets themselves travel in the change log's source record, committed with
 * the checkpoint in the same transaction, and resuming reads them from there.
 */
export type Offsets = Map<string, bigint>;

/** The map key of a topic-partition. */
export function tp(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** The position of `offsets` (see {@link Offsets}). */
export function positionOf(offsets: Offsets): Position {
  let sum = 0n;
  for (const offset of offsets.values()) sum += offset;
  return sum;
}

/** Offsets as the source record stores them: `{ "topic:partition": "offset" }` (JSON has no bigint). */
export function offsetsToJson(offsets: Offsets): Record<string, string> {
  return Object.fromEntries([...offsets].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.toString()]));
}

export function offsetsFromJson(json: unknown): Offsets {
  const offsets: Offsets = new Map();
  if (typeof json === 'object' && json !== null)
    for (const [k, v] of Object.entries(json)) if (typeof v === 'string' && /^\d+$/.test(v)) offsets.set(k, BigInt(v));
  return offsets;
}

/** True when every partition of `target` has been read up to its offset. */
export function reached(offsets: Offsets, target: Offsets): boolean {
  for (const [key, offset] of target) if ((offsets.get(key) ?? 0n) < offset) return false;
  return true;
}
