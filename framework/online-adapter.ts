import { ContainerModule } from 'inversify';
import type { Logger } from 'pino';
import type { OnlineAdapter } from './config.js';
import type { OnlineStore } from './interfaces/index.js';
import { TOKENS } from './tokens.js';

/** An online adapter as a config holds it: frozen, its module binding one store made by `create`. */
export interface DefinedOnlineAdapter<Name extends string, Config> extends OnlineAdapter {
  readonly name: Name;
  readonly config: Config;
  /** A new store; `logger` is the parent of the store's logger. */
  create(logger?: Logger): OnlineStore;
}

/**
 * Makes an online adapter (what `memory()` and `redis({ url })` return): its module binds
 * `TOKENS.OnlineStore` to one store made by `create` with the container's logger, closed when the
 * container closes.
 */
export function defineOnlineAdapter<Name extends string, Config>(
  name: Name,
  config: Config,
  create: (logger?: Logger) => OnlineStore,
  options: { readonly shared: boolean },
): DefinedOnlineAdapter<Name, Config> {
  return Object.freeze({
    kind: 'online' as const,
    name,
    config,
    shared: options.shared,
    create,
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.OnlineStore)
        .toResolvedValue((logger: Logger) => create(logger), [TOKENS.Logger])
        .inSingletonScope()
        .onDeactivation((store) => store.close());
    }),
  });
}
