import { ContainerModule } from 'inversify';
import type { BusAdapter } from '../../framework/config.js';
import { TOKENS } from '../../framework/tokens.js';
import { KafkaBus } from './kafka-bus.js';
import { type KafkaBusConfig, type ResolvedKafkaBusConfig, resolveKafkaBusConfig } from './kafka-bus-config.js';

export type { KafkaBusConfig, ResolvedKafkaBusConfig } from './kafka-bus-config.js';
export { KAFKA_BUS_ERRORS } from './kafka-bus-errors.js';
export { topicOf } from './kafka-bus.js';

/** The Kafka change bus, as a config names it (`bus: kafkaBus({ brokers })`). */
export interface KafkaBusAdapter extends BusAdapter {
  readonly name: 'kafka';
  readonly config: ResolvedKafkaBusConfig;
}

/**
 * Feature rows through Kafka, to serve from several processes: `featureflow ingest` publishes each
 * committed batch to one topic per view version (`<topicPrefix>.<view>.v<version>`, keyed by entity),
 * and every `featureflow serve` process of the consumer group `group` takes some partitions, keeps the
 * shared online store current for their entities and scores them.
 *
 * @example
 * defineConfig({ source: postgres({ tables }), online: redis({ url }), features,
 *   bus: kafkaBus({ brokers: ['kafka-1:9092'], topicPrefix: 'shop', group: 'shop-serve' }) });
 */
export function kafkaBus(config?: KafkaBusConfig): KafkaBusAdapter {
  const resolved = resolveKafkaBusConfig(config);
  return Object.freeze({
    kind: 'bus' as const,
    name: 'kafka' as const,
    config: resolved,
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.ChangeBus)
        .toResolvedValue(
          (registry, logger) => new KafkaBus(resolved, registry, logger.child({ component: 'kafka-bus' })),
          [TOKENS.FeatureRegistry, TOKENS.Logger],
        )
        .inSingletonScope()
        .onDeactivation((bus) => bus.close());
    }),
  });
}
