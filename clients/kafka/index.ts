/**
 * The kafkajs client every Kafka adapter shares: its settings (brokers, TLS, SASL), the client, and
 * the translation of kafkajs errors into coded ones. Not an adapter itself: the change bus
 * (`stores/kafka/`), the Debezium-envelope publisher and the Debezium-topics source
 * (`sources/kafka/`) build on it.
 */
export {
  connectOrderedProducer,
  createKafka,
  MAX_REQUEST_BYTES,
  sendInOrder,
  type TopicMessage,
} from './kafka-client.js';
export {
  resolveKafkaClientConfig,
  type KafkaClientConfig,
  type ResolvedKafkaClientConfig,
} from './kafka-client-config.js';
export { KAFKA_ERRORS, kafkaError } from './kafka-errors.js';
export { JoinedBytes } from './record-encoding.js';
