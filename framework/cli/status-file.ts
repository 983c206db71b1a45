import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { FeatureViewStatus } from '../interfaces/offline-store.js';
import type { ChangeLogTableStats } from '../interfaces/index.js';

/**
 * A running ingest (`featureflow ingest`, or `serve` reading the source) holds its store (DuckDB lets
 * one process open a file for writing and no other open it at all), so it publishes its progress in a
 * small JSON file (the store's `progressFile`) for `status` to read.
 */
export interface IngestProgress {
  readonly pid: number;
  /** The command that holds the store (files written before it was recorded: an ingest). */
  readonly command?: 'ingest' | 'serve';
  readonly updatedAt: string;
  readonly checkpoint: string | null;
  /** The newest source commit in the store (ISO 8601, µs, the source's clock), or null before any. */
  readonly newestCommit?: string | null;
  /** How far behind the source the store was when the newest stream batch became durable (ms). */
  readonly behindMs?: number | null;
  readonly tables: ChangeLogTableStats[];
  /** Feature views (entities, dead letters, time per transformed row), refreshed every few seconds. */
  readonly views?: readonly FeatureViewSummary[];
}

/** What `status` shows of one feature view version. */
export type FeatureViewSummary = Pick<
  FeatureViewStatus,
  | 'view'
  | 'version'
  | 'table'
  | 'active'
  | 'rows'
  | 'entities'
  | 'deadLetters'
  | 'transformedRows'
  | 'transformMicrosPerRow'
>;

/** Writes the progress file (the store adapter's `progressFile`) in one rename, so readers never see half of it. */
export function writeProgress(file: string, progress: IngestProgress): void {
  writeFileSync(file + '.tmp', JSON.stringify(progress, null, 2));
  renameSync(file + '.tmp', file);
}

export function readProgress(file: string): IngestProgress | null {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as IngestProgress;
  } catch {
    return null;
  }
}
