import { FeatureflowError } from '../../framework/errors.js';

/** Options of the Redis online store. */
export interface RedisConfig {
  /**
   * The server: `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS. Default: the
   * `REDIS_URL` environment variable, else `redis://127.0.0.1:6379`. Logged and shown in errors
   * without its password. A standalone server (or a primary); Redis Cluster is not supported (a
   * write's script touches keys of many entities).
   */
  url?: string;
  /**
   * First part of every key the store writes (`<prefix>:<view>@<version>…`), so several stores can
   * share one server. Default `featureflow`.
   */
  prefix?: string;
  /** Milliseconds a connection attempt may take before it counts as failed. Default 5 000. */
  connectTimeoutMs?: number;
  /**
   * Milliseconds a command may wait for its reply before it fails with a retriable error (the
   * connection stays up). Default 5 000.
   */
  commandTimeoutMs?: number;
  /** Most milliseconds between reconnect attempts after the connection is lost. Default 1 000. */
  maxReconnectDelayMs?: number;
  /**
   * Most rows one server-side script call applies. A larger write sends several calls, still in one
   * round trip, so other clients' reads run between them instead of waiting for the whole write.
   * Default 1 000 (a few milliseconds of the server's time); at most 10 000.
   */
  rowsPerScript?: number;
}

/** The configuration with every default filled in; frozen. */
export type ResolvedRedisConfig = Readonly<Required<RedisConfig>>;

const DEFAULT_URL = 'redis://127.0.0.1:6379';

/** The URL with its password replaced by `***`, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

/**
 * Validates the options, fills defaults (explicit value, then `REDIS_URL`, then the default) and
 * freezes the result.
 */
export function resolveRedisConfig(
  config: RedisConfig = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedRedisConfig {
  const problems: string[] = [];
  const url = config.url ?? (env.REDIS_URL || undefined) ?? DEFAULT_URL;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    problems.push('url must be a URL such as redis://127.0.0.1:6379');
  }
  if (parsed && parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    problems.push(`url ${redactUrl(url)} must start with redis:// (or rediss:// for TLS)`);
  }
  const prefix = config.prefix ?? 'featureflow';
  if (typeof prefix !== 'string' || !/^[^\s\x00-\x1f]+$/.test(prefix)) {
    problems.push(`prefix ${JSON.stringify(prefix)} must be a non-empty string without spaces or control characters`);
  }
  const resolved = {
    url,
    prefix,
    connectTimeoutMs: config.connectTimeoutMs ?? 5_000,
    commandTimeoutMs: config.commandTimeoutMs ?? 5_000,
    maxReconnectDelayMs: config.maxReconnectDelayMs ?? 1_000,
    rowsPerScript: config.rowsPerScript ?? 1_000,
  };
  for (const k of ['connectTimeoutMs', 'commandTimeoutMs', 'maxReconnectDelayMs', 'rowsPerScript'] as const) {
    const v = resolved[k];
    if (!(Number.isInteger(v) && v > 0)) problems.push(`${k} must be a positive whole number, got ${String(v)}`);
  }
  // Each row is two arguments of one call; more than this would strain the JavaScript stack and hold
  // the server for too long.
  if (resolved.rowsPerScript > 10_000)
    problems.push(`rowsPerScript must be at most 10000, got ${resolved.rowsPerScript}`);
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid Redis online store configuration:\n  - ${problems.join('\n  - ')}`,
    );
  }
  return Object.freeze(resolved);
}
