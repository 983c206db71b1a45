import { defineErrors } from '../../framework/errors.js';

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
