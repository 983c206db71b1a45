import pino, { type Logger } from 'pino';

/**
 * The root logger: JSON lines on stderr (stdout stays for command output). Components take a child
 * with their name (`logger.child({ component: 'postgres' })`). Row values and connection strings are
 * never logged; `redact` guards the usual field names in case one slips into an object.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['connectionString', 'password', '*.connectionString', '*.password', 'row', 'after', 'before', 'key'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
