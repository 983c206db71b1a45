/** A paced writer of single-row transactions, noting when each COMMIT returned (bench/serve-latency.ts, bench/kafka.ts). */
import type pg from 'pg';
import { monotonicMs } from './stats.js';

/** One single-row INSERT (autocommit: one transaction each), a prepared statement named `name`. */
export interface PacedInsert {
  name: string;
  text: string;
  /** The statement's parameters for the row with this id. */
  values(id: number): unknown[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Commits `rate`/s single-row inserts with ids from `firstId` for `seconds` (insert i is due at
 * start + i/rate), noting in `committed` (indexed by id) when each COMMIT returned, on the
 * machine-wide monotonic clock; returns the next id.
 */
export async function pacedInserts(
  client: pg.Client,
  insert: PacedInsert,
  committed: number[],
  firstId: number,
  rate: number,
  seconds: number,
): Promise<number> {
  const n = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const start = monotonicMs();
  for (let i = 0; i < n; i++) {
    const ahead = start + i * interval - monotonicMs();
    if (ahead >= 1) await sleep(ahead);
    await client.query({ name: insert.name, text: insert.text, values: insert.values(firstId + i) });
    committed[firstId + i] = monotonicMs();
  }
  return firstId + n;
}
