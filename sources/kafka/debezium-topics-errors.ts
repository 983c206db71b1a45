import { kafkaError } from '../../clients/kafka/index.js';
import { defineErrors, FeatureflowError } from '../../framework/errors.js';
import { RecordError } from './debezium-record.js';
import type { ResolvedDebeziumTopicsConfig } from './debezium-topics-config.js';

/** The Debezium-topics source's codes (connection losses are the Kafka client's `FF_KAFKA_*`). */
export const DEBEZIUM_TOPICS_ERRORS = defineErrors({
  FF_KAFKA_TOPIC_EMPTY: {
    retriable: false,
    summary: 'a Debezium topic to read does not exist or holds no change record yet',
  },
  FF_KAFKA_RECORD_UNDECODABLE: {
    retriable: false,
    summary: 'a record of a Debezium topic cannot be decoded into a change',
  },
  FF_KAFKA_OFFSETS_GONE: {
    retriable: false,
    summary: "records after the change log's Kafka offsets were deleted (retention) before they were read",
  },
  FF_KAFKA_GROUP_BUSY: {
    retriable: false,
    summary: 'the consumer group has other running members',
  },
});

/** Runs a kafkajs call, its errors translated (`what`: what was being done, for the message). */
export async function kafkaCall<T>(
  config: ResolvedDebeziumTopicsConfig,
  what: string,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw kafkaError(error, what, config.kafka.brokers);
  }
}

/** A record that cannot be decoded, as the coded error naming it (other errors unchanged). */
export function undecodable(error: unknown, topic: string, partition: number, offset: string): unknown {
  if (!(error instanceof RecordError)) return error;
  return new FeatureflowError(
    'FF_KAFKA_RECORD_UNDECODABLE',
    `record ${topic}/${partition}@${offset} cannot be read as a Debezium change: ${error.message}. ` +
      'Everything before it is in the change log. Check the connector’s converter settings against schemas/flattened/columnTypes, ' +
      'fix them and run again (the record is read again)',
  );
}
