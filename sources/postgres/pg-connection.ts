import pg from 'pg';
import { FeatureflowError } from '../../framework/errors.js';

/** node-postgres settings for one role; `pg` reads the PG* variables itself for what is not given. */
export function clientConfig(connectionString: string | undefined): pg.ClientConfig {
  return {
    ...(connectionString ? { connectionString } : {}),
    application_name: 'featureflow',
    connectionTimeoutMillis: 10_000,
    // Row values travel in binary through COPY and pgoutput; keep every session in UTC and ISO styles.
    options: '-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=3',
  };
}

/** `host:port/database` of a config, for messages. Never the password or the full connection string. */
export function describeServer(config: pg.ClientConfig): string {
  const params = config.connectionString ? parseConnectionString(config.connectionString) : {};
  const host = params.host ?? config.host ?? process.env.PGHOST ?? 'localhost';
  const port = params.port ?? config.port ?? process.env.PGPORT ?? 5432;
  const database =
    params.database ?? config.database ?? process.env.PGDATABASE ?? params.user ?? process.env.PGUSER ?? 'postgres';
  return `${host}:${port}/${database}`;
}

function parseConnectionString(text: string): { host?: string; port?: string; database?: string; user?: string } {
  try {
    const url = new URL(text);
    return {
      host: url.hostname || undefined,
      port: url.port || undefined,
      database: url.pathname.replace(/^\//, '') || undefined,
      user: decodeURIComponent(url.username) || undefined,
    };
  } catch {
    return {};
  }
}

/**
 * Translates a connection-time error into a coded one that names the server and the fix. PostgreSQL
 * errors are matched on their SQLSTATE, Node's on their errno code, never on message text.
 */
export function translateConnectError(error: unknown, config: pg.ClientConfig): unknown {
  const code = (error as { code?: string })?.code;
  const where = describeServer(config);
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case '57P03':
      return new FeatureflowError(
        'FF_PG_UNREACHABLE',
        `cannot connect to PostgreSQL at ${where} (${code}); check that the server runs and that DATABASE_URL ` +
          '(or PGHOST/PGPORT) points at it',
        { cause: error },
      );
    case '28P01':
    case '28000':
      return new FeatureflowError(
        'FF_PG_AUTH_FAILED',
        `PostgreSQL at ${where} refused the credentials (SQLSTATE ${code}); check the user and password in ` +
          'DATABASE_URL (or PGUSER/PGPASSWORD) and pg_hba.conf',
        { cause: error },
      );
    case '3D000':
      return new FeatureflowError(
        'FF_PG_DATABASE_MISSING',
        `the database in ${where} does not exist (SQLSTATE 3D000); create it or fix the database name in DATABASE_URL`,
        { cause: error },
      );
    default:
      if (error instanceof Error && /timeout/i.test(error.message) && !code) {
        return new FeatureflowError(
          'FF_PG_UNREACHABLE',
          `connecting to PostgreSQL at ${where} timed out; check the host and port`,
          {
            cause: error,
          },
        );
      }
      return error;
  }
}

/** The SQLSTATE of an error the server sent, or undefined (a Node socket error, a dropped connection). */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Connects a client, translating connection errors. */
export async function connectClient(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client(config);
  // An idle client whose server goes away emits 'error'; the next query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw translateConnectError(error, config);
  }
  return client;
}

/** Quotes a PostgreSQL identifier. */
export function quoteIdent(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"';
}

/** Quotes `schema.table` as `"schema"."table"`. */
export function quoteTable(qualified: string): string {
  const dot = qualified.indexOf('.');
  return `${quoteIdent(qualified.slice(0, dot))}.${quoteIdent(qualified.slice(dot + 1))}`;
}
