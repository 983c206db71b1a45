import type { DuckDBConnection } from '@duckdb/node-api';

/**
 * One transaction on a connection, begun at most once: every statement after {@link begin} sees the
 * same committed state. A training set's read begins it once its spine is in temp tables (see
 * DuckDBOfflineStore's `beginRead`); {@link end} ends it when it was begun, and never fails.
 */
export function readTransaction(c: DuckDBConnection): { begin(): Promise<void>; end(): Promise<void> } {
  let began = false;
  return {
    async begin() {
      if (began) return;
      began = true;
      await c.run('BEGIN TRANSACTION');
    },
    async end() {
      if (!began) return;
      began = false;
      // A read's transaction wrote nothing: whether it commits or rolls back, nothing changes.
      await c.run('COMMIT').catch(() => c.run('ROLLBACK').catch(() => undefined));
    },
  };
}
