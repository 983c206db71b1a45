import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import {
  connectOrderedProducer,
  createKafka,
  kafkaError,
  MAX_REQUEST_BYTES,
  sendInOrder,
  type TopicMessage,
} from '../../clients/kafka/index.js';
import type { ChangePublisher, PublishRun } from '../../framework/interfaces/index.js';
import type { Change } from '../../framework/types.js';
import type { ResolvedDebeziumConfig } from './debezium-config.js';
import {
  type DebeziumRecord,
  EnvelopeEncoder,
  type SnapshotMark,
  type TransactionCounts,
} from './debezium-envelope.js';

/** A record's bytes in a produce request besides its topic, key, value and headers, about. */
const RECORD_OVERHEAD = 64;

/**
 * Records are handed to the producer once they make about this many bytes: one produce request
 * (under {@link MAX_REQUEST_BYTES} unless the last record overshoots by more than the margin).
 */
const SEND_BYTES = MAX_REQUEST_BYTES - 64 * 1024;

/** The `source.version` featureflow writes (Debezium writes its own version, e.g. `3.6.1.Final`). */
const VERSION = 'featureflow';

/**
 * Publishes the change log's changes as Debezium PostgreSQL connector records on Kafka: one topic
 * per table, keyed by the primary key (so Kafka's default partitioner puts a row's records on one
 * partition, in order), transaction BEGIN/END records on `<prefix>.transaction`. An idempotent
 * producer with one request in flight keeps the order within each partition across retries.
 */
export class DebeziumPublisher implements ChangePublisher {
  readonly id: string;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private readonly topics = new Set<string>();
  private readonly headers: Record<string, string>;
  /** The bytes of the headers every record carries. */
  private readonly headerBytes: number;
  private closed = false;

  constructor(
    private readonly config: ResolvedDebeziumConfig,
    private readonly logger: Logger,
  ) {
    this.id = `debezium:${config.topicPrefix}`;
    this.kafka = createKafka(config.kafka, logger);
    this.headers = {
      '__debezium.context.connectorLogicalName': config.topicPrefix,
      '__debezium.context.taskId': '0',
      '__debezium.context.connectorName': 'postgresql',
      '__debezium.context.runId': randomUUID(),
    };
    this.headerBytes = Object.entries(this.headers).reduce((n, [k, v]) => n + k.length + v.length, 0);
  }

  async publish(run: PublishRun): Promise<void> {
    const encoder = new EnvelopeEncoder(
      {
        topicPrefix: this.config.topicPrefix,
        schemas: this.config.schemas,
        database: this.config.database,
        tombstones: this.config.tombstones,
        version: VERSION,
      },
      run.schemas,
    );
    let tx: TransactionCounts | null = null;
    // A snapshot read waits for the next change: Debezium marks a table's last read.
    let read: { change: Change; first: boolean } | null = null;
    let lastReadTable: string | null = null;
    let records: DebeziumRecord[] = [];
    let bytes = 0;
    // Records go out about one produce request at a time; the next ones are built (and the next page
    // read) while the brokers acknowledge the last ones. Sends stay one after another, in order.
    let sending: Promise<void> = Promise.resolve();
    const sendNext = async () => {
      const batch = records;
      records = [];
      bytes = 0;
      await sending;
      sending = this.send(batch);
      sending.catch(() => undefined);
    };
    const add = (built: readonly DebeziumRecord[]) => {
      for (const r of built) {
        records.push(r);
        bytes += RECORD_OVERHEAD + this.headerBytes + r.topic.length + (r.key?.length ?? 0) + (r.value?.length ?? 0);
      }
    };
    const now = () => BigInt(Date.now()) * 1000n;
    const flushRead = (last: boolean) => {
      if (!read) return;
      add(encoder.records(read.change, null, snapshotMark(read.change.table, run.tables, read.first, last), now()));
      read = null;
    };
    for await (const page of run.pages) {
      for (const change of page) {
        if (bytes >= SEND_BYTES) await sendNext();
        if (change.op === 'r') {
          const first = lastReadTable !== change.table;
          flushRead(first);
          read = { change, first };
          lastReadTable = change.table;
          continue;
        }
        flushRead(true);
        if (!tx || tx.commitPosition !== change.commitPosition || tx.xid !== change.xid) {
          if (tx) add([encoder.end(tx)]);
          tx = {
            xid: change.xid,
            id: `${change.xid}:${change.position}`,
            total: 0,
            perTable: new Map(),
            commitTime: change.commitTime,
            commitPosition: change.commitPosition,
          };
          add([encoder.begin(tx)]);
        }
        add(encoder.records(change, tx, null, now()));
      }
    }
    flushRead(true);
    if (tx) add([encoder.end(tx)]);
    await sendNext();
    await sending;
  }

  /** Sends records in order, once their topics exist (in requests the brokers accept). */
  private async send(records: readonly DebeziumRecord[]): Promise<void> {
    if (records.length === 0) return;
    // Keys and values as bytes: the partitioner hashes the key, the request's size is counted and the
    // producer copies them as they are (a string would be measured and encoded again).
    const messages: TopicMessage[] = records.map((r) => ({
      topic: r.topic,
      message: {
        key: r.key,
        value: r.value,
        headers: r.headers ? { ...r.headers, ...this.headers } : this.headers,
      },
    }));
    try {
      await this.ensureTopics([...new Set(records.map((r) => r.topic))]);
      await sendInOrder(await this.connectedProducer(), messages);
    } catch (error) {
      throw kafkaError(error, `publishing ${records.length} Debezium records`, this.config.kafka.brokers);
    }
  }

  private async ensureTopics(topics: readonly string[]): Promise<void> {
    const missing = topics.filter((t) => !this.topics.has(t));
    if (missing.length === 0) return;
    if (!this.admin) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    const existing = new Set(await this.admin.listTopics());
    const create = missing.filter((t) => !existing.has(t));
    if (create.length > 0) {
      await this.admin.createTopics({ topics: create.map((topic) => ({ topic })), waitForLeaders: true });
      this.logger.info({ topics: create }, 'created Debezium topics');
    }
    for (const t of missing) this.topics.add(t);
  }

  private async connectedProducer(): Promise<Producer> {
    this.producer ??= await connectOrderedProducer(this.kafka);
    return this.producer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}

/**
 * `source.snapshot` of a read: Debezium marks the snapshot's first and last records (`first`,
 * `last`), each further table's first and last (`first_in_data_collection`,
 * `last_in_data_collection`), and the others `true`.
 */
function snapshotMark(table: string, tables: readonly string[], first: boolean, last: boolean): SnapshotMark {
  const index = tables.indexOf(table);
  if (last && index === tables.length - 1) return 'last';
  if (first && index <= 0) return 'first';
  if (first) return 'first_in_data_collection';
  if (last) return 'last_in_data_collection';
  return 'true';
}
