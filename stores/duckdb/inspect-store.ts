import type { FeatureViewStatus } from '../../framework/features/offline-store.js';
import type { ChangeLogState, ChangeLogTableStats } from '../../framework/interfaces/index.js';
import { DuckDBChangeLog } from './duckdb-change-log.js';
import { featureStatus } from './feature-catalog.js';

/** What `featureflow status` reports of the offline store. */
export interface StoreReport {
  readonly state: ChangeLogState;
  readonly tables: ChangeLogTableStats[];
  readonly views: FeatureViewStatus[];
}

/** Reads the change log's progress, its counts and the feature views' status, opening the file read-only. */
export async function inspectStore(path: string): Promise<StoreReport> {
  const log = new DuckDBChangeLog(path, { readOnly: true });
  await log.open();
  try {
    return { state: await log.state(), tables: await log.stats(), views: await featureStatus(log.connection) };
  } finally {
    await log.close();
  }
}
