import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The PostgreSQL source's codes. */
export const POSTGRES_ERRORS = defineErrors({
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
  FF_PG_SLOT_FOREIGN: {
    retriable: false,
    summary: 'a replication slot of the configured name exists that this change log did not create',
  },
  FF_PG_SLOT_AHEAD: {
    retriable: false,
    summary: "the replication slot's confirmed position is past the change log's checkpoint",
  },
  FF_PG_PUBLICATION_FOREIGN: {
    retriable: false,
    summary: 'the publication holds tables this change log does not capture, or is not its own and lacks a table',
  },
  FF_PG_REPLICATION: { retriable: true, summary: 'the replication stream failed' },
});

/**
 * SQLSTATEs and socket errors of a server going away or not there yet: the connection is worth
 * trying again (admin_shutdown, crash_shutdown, cannot_connect_now, connection failures, and
 * object_in_use for a slot a walsender that just lost its client still holds).
 */
const RETRIABLE = new Set([
  '57P01',
  '57P02',
  '57P03',
  '55006',
  '08006',
  '08003',
  '08001',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

/**
 * A third party's error raised while talking to PostgreSQL, as a coded FeatureflowError where it is
 * worth retrying (FF_PG_UNREACHABLE, retriable) — the engine's retry policy reads only that flag;
 * anything else unchanged (it stops the run). Errors are told apart by SQLSTATE or errno code, never
 * by their message.
 */
export function translatePgError(error: unknown, where: string): unknown {
  if (error instanceof FeatureflowError) return error;
  const code = (error as { code?: string } | null)?.code;
  if (code !== undefined && RETRIABLE.has(code)) {
    return new FeatureflowError(
      'FF_PG_UNREACHABLE',
      `lost the connection to PostgreSQL at ${where} (${code}); retrying`,
      { cause: error, retriable: true },
    );
  }
  return error;
}
