import type { Logger } from 'pino';
import type { OnlineAdapter } from '../../framework/config.js';
import type { OnlineStore } from '../../framework/interfaces/index.js';
import { defineOnlineAdapter } from '../../framework/online-adapter.js';
import { resolveRedisConfig, type RedisConfig, type ResolvedRedisConfig } from './redis-config.js';
import { RedisOnlineStore } from './redis-online-store.js';

export type { RedisConfig, ResolvedRedisConfig } from './redis-config.js';
export { REDIS_ERRORS } from './redis-errors.js';

/** The Redis online store, as a config names it (`online: redis({ url })`). */
export interface RedisOnline extends OnlineAdapter {
  readonly name: 'redis';
  readonly config: ResolvedRedisConfig;
  /** A new store (connected by its `open()`); `logger` is the parent of its `redis` logger. */
  create(logger?: Logger): OnlineStore;
}

/**
 * The online store in Redis: shared by every serving process and kept across their restarts (a
 * server that restarts empty is detected, and the views are loaded again).
 *
 * @example
 * defineConfig({ source: postgres({ tables }), online: redis({ url: 'redis://cache:6379' }), features });
 */
export function redis(config?: RedisConfig): RedisOnline {
  const resolved = resolveRedisConfig(config);
  return defineOnlineAdapter(
    'redis',
    resolved,
    (logger) => new RedisOnlineStore(resolved, logger?.child({ component: 'redis' })),
    { shared: true },
  );
}
