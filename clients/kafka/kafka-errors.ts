import kafkajs from 'kafkajs';
import { defineErrors, FeatureflowError } from '../../framework/errors.js';

// kafkajs is CommonJS and Node's ESM loader finds only some of its exports by name (KafkaJSError is
// not one of them: importing it by name fails at load), so it is read from the module object.
const { KafkaJSError } = kafkajs;

/** The codes every Kafka adapter shares. */
export const KAFKA_ERRORS = defineErrors({
  FF_KAFKA_UNREACHABLE: { retriable: true, summary: 'the Kafka cluster cannot be reached, or a request timed out' },
  FF_KAFKA_REFUSED: {
    retriable: false,
    summary: 'Kafka refused a request (authentication, authorization, a bad topic)',
  },
});

/**
 * A kafkajs error (`what`: e.g. `publishing 3 batches to featureflow.points.v1`) as a coded error:
 * kafkajs marks the errors worth retrying (`retriable`: connection losses, timeouts, leader changes),
 * and those are `FF_KAFKA_UNREACHABLE`; the rest (`SASL_AUTHENTICATION_FAILED`,
 * `TOPIC_AUTHORIZATION_FAILED`, …) are `FF_KAFKA_REFUSED`. Other errors are returned unchanged.
 */
export function kafkaError(error: unknown, what: string, brokers: readonly string[]): unknown {
  if (!(error instanceof KafkaJSError)) return error;
  const type = (error as { type?: string }).type;
  const detail = type ? `${type}: ${error.message}` : error.message;
  if (error.retriable || error.name === 'KafkaJSConnectionError' || error.name === 'KafkaJSNumberOfRetriesExceeded') {
    return new FeatureflowError(
      'FF_KAFKA_UNREACHABLE',
      `${what} failed: Kafka at ${brokers.join(',')} cannot be reached or did not answer (${detail}); ` +
        'start the brokers or point brokers (KAFKA_BROKERS) at running ones; featureflow retries meanwhile',
      { cause: error },
    );
  }
  return new FeatureflowError(
    'FF_KAFKA_REFUSED',
    `${what} failed: Kafka at ${brokers.join(',')} refused it (${detail}); check the credentials (sasl), the ACLs and the topic`,
    { cause: error },
  );
}
