import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The PostgreSQL prediction sink's codes. */
export const POSTGRES_PREDICTIONS_ERRORS = defineErrors({
  FF_PREDICTIONS_UNREACHABLE: { retriable: true, summary: 'the database of a prediction sink cannot be reached' },
  FF_PREDICTIONS_REFUSED: {
    retriable: false,
    summary: 'the database of a prediction sink refused the credentials or a privilege',
  },
  FF_PREDICTIONS_TABLE: {
    retriable: false,
    summary: "a prediction sink's table does not have the layout the sink writes",
  },
});

/**
 * SQLSTATEs and socket errors of a server going away or not there yet (admin_shutdown,
 * crash_shutdown, cannot_connect_now, connection failures): worth trying again.
 */
const UNREACHABLE = new Set([
  '57P01',
  '57P02',
  '57P03',
  '08006',
  '08003',
  '08001',
  '08004',
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
  'ETIMEDOUT',
]);
/** invalid_password, invalid_authorization_specification, insufficient_privilege, invalid_catalog_name (no such database). */
const REFUSED = new Set(['28P01', '28000', '42501', '3D000']);

/** True for an error after which the connection cannot be used again. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return UNREACHABLE.has(code);
  // node-postgres raises plain Errors (no code, no severity) for a connection that ended or timed out.
  return error instanceof Error && error.constructor === Error && !('severity' in error);
}

/**
 * A node-postgres error met while writing `what` to `table` at `server` (`host:port/database`, never
 * the connection string) as a coded error: told apart by SQLSTATE or errno code, never by message.
 * Any other server error (a bug of ours, a constraint of the user's table) is returned unchanged.
 */
export function translatePredictionsError(error: unknown, what: string, table: string, server: string): unknown {
  if (error instanceof FeatureflowError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === '3F000') {
    return new FeatureflowError(
      'FF_PREDICTIONS_TABLE',
      `${what}: the schema of ${table} does not exist at ${server} (SQLSTATE 3F000); create it, or name a table in an existing schema in postgresPredictions({ table })`,
      { cause: error },
    );
  }
  if (typeof code === 'string' && REFUSED.has(code)) {
    return new FeatureflowError(
      'FF_PREDICTIONS_REFUSED',
      `${what}: PostgreSQL at ${server} refused (SQLSTATE ${code}); check the user and password of postgresPredictions({ connectionString }) ` +
        `(or DATABASE_URL), that the database exists, and that the user may create and write ${table}`,
      { cause: error },
    );
  }
  if (isConnectionError(error)) {
    return new FeatureflowError(
      'FF_PREDICTIONS_UNREACHABLE',
      `${what}: PostgreSQL at ${server} cannot be reached (${typeof code === 'string' ? code : (error as Error).message}); ` +
        'check that the server runs and that postgresPredictions({ connectionString }) (or DATABASE_URL) points at it; the next write reconnects',
      { cause: error },
    );
  }
  return error;
}
