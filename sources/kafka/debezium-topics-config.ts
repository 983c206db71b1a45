import type { ServiceIdentifier } from 'inversify';
import {
  type KafkaClientConfig,
  type ResolvedKafkaClientConfig,
  resolveKafkaClientConfig,
} from '../../clients/kafka/index.js';
import { FeatureflowError } from '../../framework/errors.js';
import { qualifyTable } from '../../framework/types.js';
import { declaredType } from './debezium-columns.js';

/** Settings of the Debezium-topics source, as `debeziumTopics({ … })` takes them. */
export interface DebeziumTopicsConfig extends KafkaClientConfig {
  /**
   * The connector's `topic.prefix`: table `schema.table` is read from topic `<prefix>.<schema>.<table>`.
   * Required unless {@link topics} names every topic.
   */
  topicPrefix?: string;
  /** Tables to capture, `schema.table` or `table` (schema `public`). Required unless {@link topics} is given. */
  tables?: readonly string[];
  /**
   * Topics to read, where they are not named `<prefix>.<schema>.<table>` (a RegexRouter, another
   * naming): table → topic. A table listed here need not be in {@link tables}. Default none.
   */
  topics?: Readonly<Record<string, string>>;
  /**
   * How the records were written: `with` JsonConverter's `schemas.enable=true` (`{schema, payload}`:
   * exact types), `without` (plain JSON: types inferred from the values, or named in
   * {@link columnTypes}), `auto` to tell each record by its shape. Default `auto`.
   */
  schemas?: 'auto' | 'with' | 'without';
  /**
   * True when the records went through Debezium's `ExtractNewRecordState` (the row itself, not the
   * envelope): deletes are tombstones or rows with `__deleted: "true"`, the op is `__op` when added
   * (`add.fields=op,lsn,source.ts_ms`), else an update. Default false.
   */
  flattened?: boolean;
  /**
   * The consumer group: featureflow sets its offsets from the change log before it starts, and
   * commits them once batches are durable (for lag monitoring; the change log's are the ones it
   * resumes from). One change log per group. Default `featureflow-<topicPrefix>`.
   */
  group?: string;
  /**
   * Column types where the records cannot tell (without schemas; `decimal.handling.mode=string`):
   * table → column → PostgreSQL type (`numeric(12,2)`, `int8`, `timestamp`, `uuid`, `text[]`…).
   * Default none.
   */
  columnTypes?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Most bytes fetched from one partition at a time (kafkajs' `maxBytesPerPartition`): one fetch of
   * one partition is one batch of the change log, so this bounds a batch's memory. Default 1 MiB.
   */
  maxBatchBytes?: number;
}

/** One table and the topic its changes are read from. */
export interface TableTopic {
  readonly table: string;
  readonly topic: string;
}

/** The settings with every default filled in; frozen. */
export interface ResolvedDebeziumTopicsConfig {
  readonly kafka: ResolvedKafkaClientConfig;
  readonly topicPrefix?: string;
  /** Qualified, without duplicates. */
  readonly tables: readonly string[];
  readonly streams: readonly TableTopic[];
  readonly schemas: 'auto' | 'with' | 'without';
  readonly flattened: boolean;
  readonly group: string;
  readonly columnTypes: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly maxBatchBytes: number;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

/** Validates the settings (every problem at once, with its fix) and fills defaults. */
export function resolveDebeziumTopicsConfig(config: DebeziumTopicsConfig): ResolvedDebeziumTopicsConfig {
  const {
    topicPrefix,
    tables = [],
    topics = {},
    schemas = 'auto',
    flattened = false,
    group,
    columnTypes = {},
    maxBatchBytes = 1_048_576,
    ...client
  } = config ?? {};
  const kafka = resolveKafkaClientConfig(client, 'the Debezium-topics source');
  const problems: string[] = [];
  if (topicPrefix !== undefined && (typeof topicPrefix !== 'string' || !TOPIC.test(topicPrefix)))
    problems.push(
      `topicPrefix must be a Kafka topic name (letters, digits, '.', '_', '-'), got ${JSON.stringify(topicPrefix)}`,
    );
  if (!Array.isArray(tables)) problems.push('tables must be a list of "schema.table" names');
  const named = new Map<string, string>();
  for (const t of Array.isArray(tables) ? tables : []) {
    if (typeof t !== 'string' || t.split('.').length > 2 || t.split('.').some((p) => p.length === 0))
      problems.push(`tables entry ${JSON.stringify(t)} must be "table" or "schema.table"`);
    else if (topicPrefix === undefined && topics[t] === undefined && topics[qualifyTable(t)] === undefined)
      problems.push(`table ${t} has no topic: set topicPrefix (Debezium's topic.prefix) or name it in topics`);
    else named.set(qualifyTable(t), topics[t] ?? topics[qualifyTable(t)] ?? `${topicPrefix}.${qualifyTable(t)}`);
  }
  for (const [t, topic] of Object.entries(topics)) {
    if (typeof topic !== 'string' || !TOPIC.test(topic))
      problems.push(`topics["${t}"] must be a Kafka topic name, got ${JSON.stringify(topic)}`);
    else if (!named.has(qualifyTable(t))) named.set(qualifyTable(t), topic);
  }
  if (named.size === 0)
    problems.push(
      'name at least one table, e.g. debeziumTopics({ topicPrefix: "dbserver1", tables: ["public.orders"] })',
    );
  if (!['auto', 'with', 'without'].includes(schemas)) problems.push(`schemas must be 'auto', 'with' or 'without'`);
  if (typeof flattened !== 'boolean') problems.push('flattened must be true or false');
  if (!(Number.isInteger(maxBatchBytes) && maxBatchBytes >= 1024))
    problems.push(`maxBatchBytes must be a whole number of bytes, at least 1024, got ${JSON.stringify(maxBatchBytes)}`);
  const groupId = group ?? `featureflow-${topicPrefix ?? [...named.values()][0]}`;
  if (typeof groupId !== 'string' || groupId.length === 0) problems.push('group must be a non-empty string');
  for (const [table, columns] of Object.entries(columnTypes)) {
    for (const [column, type] of Object.entries(columns ?? {})) {
      if (typeof type !== 'string' || !declaredType(type))
        problems.push(
          `columnTypes["${table}"]["${column}"]: ${JSON.stringify(type)} is not a type featureflow reads (e.g. numeric(12,2), int8, timestamptz, uuid, jsonb, text[])`,
        );
    }
  }
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid debeziumTopics({ … }) source settings:\n  - ${problems.join('\n  - ')}`,
    );
  }
  const streams = [...named].map(([table, topic]) => Object.freeze({ table, topic }));
  return Object.freeze({
    kafka,
    ...(topicPrefix === undefined ? {} : { topicPrefix }),
    tables: Object.freeze(streams.map((s) => s.table)),
    streams: Object.freeze(streams),
    schemas,
    flattened,
    group: groupId,
    maxBatchBytes,
    columnTypes: Object.freeze(
      Object.fromEntries(Object.entries(columnTypes).map(([t, c]) => [qualifyTable(t), Object.freeze({ ...c })])),
    ),
  });
}

/** The Debezium-topics source's resolved settings in the container. */
export const DEBEZIUM_TOPICS_CONFIG = Symbol.for(
  'featureflow/debezium-topics/Config',
) as ServiceIdentifier<ResolvedDebeziumTopicsConfig>;
