import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The Redis online store's codes. */
export const REDIS_ERRORS = defineErrors({
  FF_ONLINE_UNREACHABLE: { retriable: true, summary: 'the online store cannot be reached' },
  FF_ONLINE_AUTH: { retriable: false, summary: 'the online store refused the credentials or a command' },
  FF_ONLINE_REFUSED: { retriable: true, summary: 'the online store refused a write for now' },
});

/** Reply prefixes (Redis's error codes, the reply's first word) that mean: refused for now, try again later. */
const REFUSED = new Set(['OOM', 'READONLY', 'MISCONF', 'BUSY', 'MASTERDOWN', 'TRYAGAIN']);
/** Reply prefixes that mean: these credentials or this user will never be allowed. */
const DENIED = new Set(['NOAUTH', 'WRONGPASS', 'NOPERM']);

/** The server's error code: the first word of a reply error (`OOM command not allowed…` → `OOM`). */
function replyCode(error: Error): string | undefined {
  // ioredis gives server replies as ReplyError; everything else it raises is about the connection.
  return error.name === 'ReplyError' ? /^[A-Z]+/.exec(error.message)?.[0] : undefined;
}

/**
 * ioredis attaches the failed command with its arguments to the error: our rows' values, or the
 * password of an AUTH or HELLO. Only the command's name is kept, so logging the error logs neither.
 */
function withoutArguments(error: Error): void {
  const command = (error as { command?: { name?: string; args?: unknown } }).command;
  if (command?.args !== undefined) (error as { command?: unknown }).command = { name: command.name };
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}

/** The error `open()` raises when the first connection fails. */
export function connectError(error: unknown, url: string): FeatureflowError {
  const cause = error instanceof Error ? error : new Error(String(error));
  withoutArguments(cause);
  if (DENIED.has(replyCode(cause) ?? '')) {
    return new FeatureflowError(
      'FF_ONLINE_AUTH',
      `Redis at ${url} refused the connection (${describe(cause)}); put the right user and password in the online store's url (REDIS_URL)`,
      { cause },
    );
  }
  return new FeatureflowError(
    'FF_ONLINE_UNREACHABLE',
    `the online store cannot be reached: connecting to Redis at ${url} failed (${describe(cause)}); ` +
      `start redis-server there, or point the online store's url (REDIS_URL) at a running server`,
    { cause },
  );
}

/**
 * A failed command (`what`: e.g. `write of 3 batches`) as a coded error: lost or absent connections
 * and timeouts are retriable `FF_ONLINE_UNREACHABLE` (ioredis reconnects by itself), a server that
 * refuses for now is retriable `FF_ONLINE_REFUSED`, refused credentials are `FF_ONLINE_AUTH`. Any other
 * reply error is a bug (a script error, a wrong type at a key of ours) and is returned unchanged.
 */
export function commandError(error: unknown, what: string, url: string): unknown {
  if (!(error instanceof Error) || error instanceof FeatureflowError) return error;
  withoutArguments(error);
  const code = replyCode(error);
  // LOADING: the server restarted and is reading its data file; as good as not there yet.
  if (code === undefined || code === 'LOADING') {
    return new FeatureflowError(
      'FF_ONLINE_UNREACHABLE',
      `${what} failed: Redis at ${url} cannot be reached (${describe(error)}); the client reconnects by itself, so try again`,
      { cause: error },
    );
  }
  if (REFUSED.has(code)) {
    return new FeatureflowError(
      'FF_ONLINE_REFUSED',
      `${what} failed: Redis at ${url} refused it for now (${error.message}); raise maxmemory (with maxmemory-policy noeviction), ` +
        `or point the url at the primary, then try again`,
      { cause: error },
    );
  }
  if (DENIED.has(code)) {
    return new FeatureflowError(
      'FF_ONLINE_AUTH',
      `${what} failed: Redis at ${url} denied it (${error.message}); fix the user and password in the url, or grant the user the commands and keys the store needs`,
      { cause: error },
    );
  }
  return error;
}
