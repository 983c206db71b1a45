import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The DuckDB store's codes. */
export const DUCKDB_ERRORS = defineErrors({
  FF_STORE_LOCKED: { retriable: false, summary: 'the DuckDB file is in use by another process' },
  FF_STORE_PATH: { retriable: false, summary: 'the store path cannot hold the DuckDB file' },
  FF_STORE_TIMEOUT: { retriable: false, summary: 'the file system of the store path did not answer in time' },
  FF_STORE_FORMAT: { retriable: false, summary: 'the DuckDB file was written in an older layout of the change log' },
});

/**
 * DuckDB's error opening a file as a coded error: another process holding it (DuckDB allows one
 * writer per file, and its lock error carries no code, only its text) is FF_STORE_LOCKED.
 */
export function translateOpenError(error: unknown, path: string): unknown {
  if (error instanceof FeatureflowError) return error;
  const message = String((error as Error)?.message ?? error);
  if (/lock/i.test(message)) {
    return new FeatureflowError(
      'FF_STORE_LOCKED',
      `the DuckDB file ${path} is in use by another process (DuckDB allows one writer per file); ` +
        'stop the other featureflow process or point the store (duckdb({ path }), FEATUREFLOW_DUCKDB) at another file',
      { cause: error },
    );
  }
  return error;
}
