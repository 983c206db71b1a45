import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FeatureViewStatus } from '../features/offline-store.js';
import type { ChangeLogTableStats } from '../interfaces/index.js';

/**
 * DuckDB lets one process open a file for writing and no other process open it at all, so a running
 * ingest publishes its progress in a small JSON file beside the DuckDB file for `status` to read.
 */
export interface IngestProgress {
  readonly pid: number;
  readonly updatedAt: string;
  readonly checkpoint: string | null;
  readonly tables: ChangeLogTableStats[];
  /** Feature views (entities, dead letters), refreshed every few seconds. */
  readonly views?: readonly FeatureViewSummary[];
}

/** What `status` shows of one feature view version. */
export type FeatureViewSummary = Pick<FeatureViewStatus, 'view' | 'version' | 'table' | 'active' | 'rows' | 'entities' | 'deadLetters'>;

export function statusFilePath(duckdbPath: string): string {
  return join(dirname(duckdbPath), 'ingest-status.json');
}

export function writeProgress(duckdbPath: string, progress: IngestProgress): void {
  const file = statusFilePath(duckdbPath);
  writeFileSync(file + '.tmp', JSON.stringify(progress, null, 2));
  renameSync(file + '.tmp', file);
}

export function readProgress(duckdbPath: string): IngestProgress | null {
  const file = statusFilePath(duckdbPath);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as IngestProgress;
  } catch {
    return null;
  }
}
