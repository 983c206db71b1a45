import type { Logger } from 'pino';
import type { OnlineAdapter } from '../../framework/config.js';
import type { OnlineStore } from '../../framework/interfaces/index.js';
import { defineOnlineAdapter } from '../../framework/online-adapter.js';
import { resolveMemoryConfig, type MemoryConfig, type ResolvedMemoryConfig } from './memory-config.js';
import { MemoryOnlineStore } from './memory-online-store.js';

export type { MemoryConfig, ResolvedMemoryConfig } from './memory-config.js';

/** The in-process online store, as a config names it (`online: memory()`). */
export interface MemoryOnline extends OnlineAdapter {
  readonly name: 'memory';
  readonly config: ResolvedMemoryConfig;
  /** A new, empty store; `logger` is the parent of its `memory` logger. */
  create(logger?: Logger): OnlineStore;
}

/**
 * The online store kept in this process's memory: the fastest reads, loaded from the offline store
 * at every start. Use Redis to share one store between processes or keep it across restarts.
 *
 * @example
 * defineConfig({ source: postgres({ tables }), online: memory(), features });
 */
export function memory(config?: MemoryConfig): MemoryOnline {
  const resolved = resolveMemoryConfig(config);
  return defineOnlineAdapter(
    'memory',
    resolved,
    (logger) => new MemoryOnlineStore(resolved, logger?.child({ component: 'memory' })),
    { shared: false },
  );
}
