/** Writes digits into PostgreSQL's `digits(id, label, pixels bytea)` with COPY, batch by batch. */
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Digit } from './digit.js';

/** Options of {@link copyDigits}. */
export interface CopyDigitsOptions {
  /** The table, schema-qualified or not: `"name"` or `"schema"."name"` is quoted for you. Default `public.digits`. */
  readonly table?: string;
  /** Writes the label as NULL (digits to predict, whose labels are held back). Default false. */
  readonly withoutLabels?: boolean;
  /** Hears the number of digits written so far, after each batch. */
  readonly onProgress?: (written: number) => void;
}

/** `public.digits` → `"public"."digits"`. */
export function quoteTable(table: string): string {
  return table
    .split('.')
    .map((part) => `"${part.replaceAll('"', '""')}"`)
    .join('.');
}

/** One COPY text line: id, label (or \N), pixels as bytea hex (its backslash escaped for COPY). */
function line(digit: Digit, withoutLabels: boolean): string {
  return `${digit.id}\t${withoutLabels ? '\\N' : digit.label}\t\\\\x${Buffer.from(digit.pixels.buffer, digit.pixels.byteOffset, digit.pixels.byteLength).toString('hex')}\n`;
}

/**
 * Streams `digits` (an iterable of batches, sync or async) into the table with one COPY; memory
 * holds one batch. Returns the number of digits written. Runs in the caller's transaction, if any.
 */
export async function copyDigits(
  client: pg.ClientBase,
  digits: Iterable<readonly Digit[]> | AsyncIterable<readonly Digit[]>,
  options: CopyDigitsOptions = {},
): Promise<number> {
  const withoutLabels = options.withoutLabels ?? false;
  let written = 0;
  const sink = client.query(
    copyFrom(`COPY ${quoteTable(options.table ?? 'public.digits')} (id, label, pixels) FROM STDIN`),
  );
  await pipeline(async function* () {
    for await (const batch of digits) {
      yield batch.map((d) => line(d, withoutLabels)).join('');
      written += batch.length;
      options.onProgress?.(written);
    }
  }, sink);
  return written;
}

/** Cuts an array of digits into batches for {@link copyDigits}. */
export function* batchesOf(digits: readonly Digit[], size = 1000): Generator<readonly Digit[]> {
  for (let i = 0; i < digits.length; i += size) yield digits.slice(i, i + size);
}
