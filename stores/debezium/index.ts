import { ContainerModule } from 'inversify';
import type { PublishAdapter } from '../../framework/config.js';
import { TOKENS } from '../../framework/tokens.js';
import { type DebeziumConfig, type ResolvedDebeziumConfig, resolveDebeziumConfig } from './debezium-config.js';
import { DebeziumPublisher } from './debezium-publisher.js';

export type { DebeziumConfig, ResolvedDebeziumConfig } from './debezium-config.js';

/** The Debezium-envelope publisher, as a config names it (`publish: debezium({ brokers })`). */
export interface DebeziumPublish extends PublishAdapter {
  readonly name: 'debezium';
  readonly config: ResolvedDebeziumConfig;
}

/**
 * Publishes every committed change of the change log to Kafka as the records Debezium's PostgreSQL
 * connector writes (topics `<prefix>.<schema>.<table>` and `<prefix>.transaction`, JsonConverter
 * with or without schemas), after the store holds it; at least once.
 *
 * @example
 * defineConfig({ source: postgres({ tables }), publish: debezium({ brokers: ['127.0.0.1:9092'], topicPrefix: 'shop' }) });
 */
export function debezium(config?: DebeziumConfig): DebeziumPublish {
  const resolved = resolveDebeziumConfig(config);
  return Object.freeze({
    kind: 'publish' as const,
    name: 'debezium' as const,
    config: resolved,
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.ChangePublisher)
        .toResolvedValue(
          (logger) => new DebeziumPublisher(resolved, logger.child({ component: 'debezium' })),
          [TOKENS.Logger],
        )
        .inSingletonScope()
        .onDeactivation((publisher) => publisher.close());
    }),
  });
}
