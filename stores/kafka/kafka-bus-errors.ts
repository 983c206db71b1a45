import { kafkaError } from '../../clients/kafka/index.js';
import { defineErrors, FeatureflowError } from '../../framework/errors.js';

/** The Kafka change bus's own codes (connection and refusal codes are the Kafka client's). */
export const KAFKA_BUS_ERRORS = defineErrors({
  FF_KAFKA_BUS_RECORD: {
    retriable: false,
    summary: 'a record on a change-bus topic is not a feature row of its view version',
  },
});

/**
 * A failure of the bus (`what`: e.g. `publishing 12 feature rows`) as a coded error: kafkajs' retriable
 * ones as `FF_KAFKA_UNREACHABLE` (the ingest reconnects and publishes again), the rest as `FF_KAFKA_REFUSED`.
 */
export function busError(error: unknown, what: string, brokers: readonly string[]): unknown {
  return kafkaError(error, `the Kafka change bus: ${what}`, brokers);
}

/** A record that cannot be read as a feature row of its topic's view version. */
export function undecodableRecord(error: unknown, topic: string, partition: number, offset: string): FeatureflowError {
  return new FeatureflowError(
    'FF_KAFKA_BUS_RECORD',
    `the record at offset ${offset} of ${topic} partition ${partition} is not a feature row of its view version ` +
      `(${(error as Error)?.message ?? String(error)}); only featureflow's ingest should write to the bus's topics, ` +
      'and a changed definition needs a new version (a new topic)',
    { cause: error },
  );
}
