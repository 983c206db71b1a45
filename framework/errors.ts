/**
 * The catalogue of featureflow's coded errors. Every error a user can meet has a code here, a message
 * that says what happened, to which thing, and the fix, and a `retriable` flag that the one retry
 * policy of the ingestion engine reads. `docs/errors.md` lists the same codes; a test keeps the two
 * in step.
 */
export const ErrorCodes = {
  FF_CONFIG_INVALID: { retriable: false, summary: 'the configuration is invalid' },
  FF_PG_UNREACHABLE: { retriable: true, summary: 'PostgreSQL cannot be reached' },
  FF_PG_DATABASE_MISSING: { retriable: false, summary: 'the database does not exist' },
  FF_PG_SLOTS_EXHAUSTED: { retriable: false, summary: 'every replication slot of the server is in use' },
  FF_PG_AUTH_FAILED: { retriable: false, summary: 'PostgreSQL refused the credentials' },
  FF_PG_VERSION: { retriable: false, summary: 'the PostgreSQL server is older than 14' },
  FF_PG_WAL_LEVEL: { retriable: false, summary: 'wal_level is not logical' },
  FF_PG_PRIVILEGE: { retriable: false, summary: 'the role lacks a privilege featureflow needs' },
  FF_PG_TABLE_MISSING: { retriable: false, summary: 'a configured table does not exist' },
  FF_PG_NO_KEY: { retriable: false, summary: 'a table has no primary key and no REPLICA IDENTITY FULL' },
  FF_PG_TYPE_UNSUPPORTED: { retriable: false, summary: 'a column has a type featureflow cannot decode exactly' },
  FF_PG_SLOT_LOST: { retriable: false, summary: 'the replication slot vanished or fell behind the checkpoint' },
  FF_PG_SLOT_FOREIGN: { retriable: false, summary: 'a replication slot of the configured name exists that this change log did not create' },
  FF_PG_SLOT_AHEAD: { retriable: false, summary: "the replication slot's confirmed position is past the change log's checkpoint" },
  FF_PG_PUBLICATION_FOREIGN: { retriable: false, summary: 'the publication holds tables this change log does not capture, or is not its own and lacks a table' },
  FF_PG_REPLICATION: { retriable: true, summary: 'the replication stream failed' },
  FF_TOAST_UNFILLED: { retriable: false, summary: 'an unchanged TOAST value has no earlier image of its row to be filled from' },
  FF_TABLES_CHANGED: { retriable: false, summary: 'a table the change log holds is no longer configured' },
  FF_STORE_LOCKED: { retriable: false, summary: 'the DuckDB file is in use by another process' },
  FF_STORE_PATH: { retriable: false, summary: 'the store path cannot hold the DuckDB file' },
  FF_STORE_TIMEOUT: { retriable: false, summary: 'the file system of the store path did not answer in time' },
  FF_STORE_FORMAT: { retriable: false, summary: 'the DuckDB file was written in an older layout of the change log' },
  FF_FEATURE_DEFINITION: { retriable: false, summary: 'a feature definition is invalid' },
  FF_FEATURE_VERSION: { retriable: false, summary: 'a feature definition changed without a version bump' },
  FF_EXPORT: { retriable: false, summary: 'an export cannot be made as asked' },
  FF_MODEL_LOAD: { retriable: false, summary: 'a model cannot be loaded from its files' },
  FF_MODEL_INPUT: { retriable: false, summary: "a feature service's features do not fit the model's inputs" },
  FF_SCORER_FAILED: { retriable: true, summary: 'a scoring worker crashed or its model failed while scoring' },
  FF_SCORER_CLOSED: { retriable: false, summary: 'the scorer is not open' },
  FF_ONLINE_UNREACHABLE: { retriable: true, summary: 'the online store cannot be reached' },
  FF_ONLINE_AUTH: { retriable: false, summary: 'the online store refused the credentials or a command' },
  FF_ONLINE_REFUSED: { retriable: true, summary: 'the online store refused a write for now' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** An error with a stable code. `cause` keeps the original error (e.g. a PostgreSQL error with its SQLSTATE). */
export class FeatureflowError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FeatureflowError';
    this.code = code;
    this.retriable = ErrorCodes[code].retriable;
  }
}

/** True when the error (or a FeatureflowError wrapping it) is worth retrying. */
export function isRetriable(error: unknown): boolean {
  if (error instanceof FeatureflowError) return error.retriable;
  const code = (error as { code?: string } | null)?.code;
  // Connection-level failures (Node socket errors and PostgreSQL's admin shutdown / cannot connect now).
  return (
    code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' ||
    code === '57P01' || code === '55006' || code === '57P02' || code === '57P03' || code === '08006' || code === '08003' || code === '08001'
  );
}
