import type { Admin, Consumer, EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { connectOrderedProducer, createKafka, sendInOrder, type TopicMessage } from '../../clients/kafka/index.js';
import type { FeatureRow } from '../../framework/features/feature-rows.js';
import type { FeatureRegistry } from '../../framework/features/feature-registry.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import type { ChangeBus, FeatureRowsListener, FeatureRowsMessage } from '../../framework/interfaces/change-bus.js';
import type { Position } from '../../framework/types.js';
import { FeatureRowCodec, headerPosition, THROUGH_HEADER } from './feature-row-codec.js';
import type { ResolvedKafkaBusConfig } from './kafka-bus-config.js';
import { busError, undecodableRecord } from './kafka-bus-errors.js';

/** The topic of a view version: `<prefix>.<view>.v<version>`. */
export function topicOf(prefix: string, view: Pick<FeatureView, 'name' | 'version'>): string {
  return `${prefix}.${view.name.replace(/[^A-Za-z0-9._-]/g, '_')}.v${view.version}`;
}

/** How long close waits for consumed records to settle before it leaves their offsets uncommitted. */
const CLOSE_COMMIT_WAIT_MS = 10_000;
/** Longest pause before records that were not served are consumed again. */
const MAX_REWIND_PAUSE_MS = 30_000;
/**
 * Served offsets are committed together at most this often: one request for every partition, rather
 * than one per fetched batch (up to hundreds a second at a commit a few milliseconds). A process that
 * dies leaves at most this much served work to be applied again, idempotently, by the next owner.
 */
const OFFSET_COMMIT_INTERVAL_MS = 200;

/**
 * The change bus on Kafka, both ends. The ingest publishes each committed batch's feature rows to one
 * topic per view version, keyed by entity (Kafka's default partitioner keeps an entity on one
 * partition, in order; a truncate goes to every partition), then a marker on every partition of every
 * topic saying that the partition holds all rows committed up to the batch's position. An idempotent
 * producer with one request in flight keeps each partition's order across retries.
 *
 * `featureflow serve` processes consume the topics in one consumer group: each owns some partitions,
 * hands their rows to the online side, and commits a partition's offset only once the rows' online
 * writes and predictions are done ({@link FeatureRowsMessage.settle}), the served partitions' offsets
 * together at most every {@link OFFSET_COMMIT_INTERVAL_MS}. A process that dies leaves its
 * uncommitted rows to the process that takes its partitions over, which applies them again (online
 * writes and prediction sinks are keyed by entity and position: nothing changes twice). Each message
 * is one partition's records, its `through` that partition's marker ({@link FeatureRowsMessage.part}):
 * the shared online store keeps each partition's position, and a view is served through the lowest,
 * whichever processes own the partitions.
 */
export class KafkaBus implements ChangeBus {
  readonly publisherId: string;
  private readonly kafka: Kafka;
  private readonly codecs = new Map<string, FeatureRowCodec>();
  private readonly partitions = new Map<string, number>();
  private readonly listeners: FeatureRowsListener[] = [];
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private consumer: Consumer | undefined;
  private topicsReady: Promise<void> | undefined;
  private closed = false;
  /**
   * Per `topic:partition`: the offset commits waiting for their records to settle, in order, and the
   * partition's generation (a failed settle rewinds the partition and starts a new one: the commits
   * of records delivered before the rewind are dropped, as the records come again).
   */
  private readonly commits = new Map<string, { chain: Promise<void>; generation: number; failures: number }>();
  /** Per `topic:partition`: the next offset to commit, of records served since the last offset commit. */
  private readonly served = new Map<string, { topic: string; partition: number; offset: string }>();
  /** The timer of the next offset commit, while served offsets wait for it. */
  private commitTimer: NodeJS.Timeout | undefined;
  /** The offset commit under way. */
  private committing: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: ResolvedKafkaBusConfig,
    registry: FeatureRegistry,
    private readonly logger: Logger,
  ) {
    this.publisherId = `kafka-bus:${config.topicPrefix}`;
    this.kafka = createKafka(config.kafka, logger);
    for (const view of registry.views) this.codecs.set(topicOf(config.topicPrefix, view), new FeatureRowCodec(view));
  }

  /** The bus's topics, one per view version of the definitions. */
  get topics(): readonly string[] {
    return [...this.codecs.keys()];
  }

  async publish(message: FeatureRowsMessage): Promise<void> {
    if (this.closed) throw new Error('the Kafka bus is closed: publish before close()');
    if (this.codecs.size === 0) return;
    const records: TopicMessage[] = [];
    const add = (topic: string, message: Message) => records.push({ topic, message });
    let rows = 0;
    try {
      await this.ensureTopics();
      for (const batch of message.batches) {
        const topic = topicOf(this.config.topicPrefix, batch.view);
        const codec = this.codecs.get(topic);
        if (!codec) continue;
        for (const row of batch.rows) {
          const record = codec.encode(row);
          rows++;
          if (row.op === 't') {
            for (let p = 0; p < this.partitions.get(topic)!; p++) add(topic, { ...record, key: null, partition: p });
          } else add(topic, record);
        }
      }
      if (message.through !== null) {
        const headers = { [THROUGH_HEADER]: message.through.toString() };
        for (const topic of this.codecs.keys())
          for (let p = 0; p < this.partitions.get(topic)!; p++)
            add(topic, { key: null, value: '', partition: p, headers });
      }
      if (records.length === 0) return;
      await sendInOrder(await this.connectedProducer(), records);
    } catch (error) {
      throw busError(error, `publishing ${rows} feature rows`, this.config.kafka.brokers);
    }
  }

  subscribe(listener: FeatureRowsListener): void {
    if (this.closed) throw new Error('the Kafka bus is closed: subscribe before close()');
    this.listeners.push(listener);
  }

  /** Joins the consumer group and starts consuming (from the start of the topics when the group is new). */
  async listen(): Promise<void> {
    if (this.consumer || this.closed) return;
    const { config } = this;
    try {
      await this.ensureTopics();
      // The group's coordinator must be ready before the consumer joins: on a broker whose offsets
      // topic is new, a join fails with "coordinator is loading", and a consumer restarted after that
      // crash was seen never to join again. Describing the group waits (with retries) until it is.
      await this.admin!.describeGroups([config.group]).catch((error: unknown) =>
        this.logger.warn(
          { err: error, group: config.group },
          'the consumer group could not be described; joining anyway',
        ),
      );
      const consumer = this.kafka.consumer({
        groupId: config.group,
        sessionTimeout: config.sessionTimeoutMs,
        heartbeatInterval: Math.max(100, Math.min(3_000, Math.floor(config.sessionTimeoutMs / 5))),
        // A short long-poll: an idle partition's fetch does not hold back the others, and close is quick.
        maxWaitTimeInMs: 100,
      });
      this.consumer = consumer;
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        this.logger.info({ group: config.group, partitions: payload.memberAssignment }, 'joined the consumer group');
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        this.logger.error(
          { err: payload.error, restart: payload.restart },
          payload.restart ? 'consuming the bus failed; restarting the consumer' : 'consuming the bus failed; stopped',
        );
      });
      await consumer.connect();
      await consumer.subscribe({ topics: this.topics as string[], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.consume(payload),
      });
    } catch (error) {
      throw busError(error, `joining consumer group ${config.group}`, config.kafka.brokers);
    }
  }

  /** One partition's fetched records: delivered as one message, its offset committed once settled. */
  private async consume({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0 || !isRunning() || isStale()) return;
    const { topic, partition } = batch;
    const codec = this.codecs.get(topic)!;
    const rows: FeatureRow[] = [];
    let mark: Position | null = null;
    for (const m of batch.messages) {
      const headers = m.headers ?? {};
      try {
        if (headers[THROUGH_HEADER] !== undefined) mark = headerPosition(headers, THROUGH_HEADER);
        else rows.push(codec.decode(m.value ?? Buffer.alloc(0), headers));
      } catch (error) {
        // A record this bus did not write (or a definition that changed without a version bump): kept
        // in the topic, named in the log, and skipped, so that one bad record does not stop serving.
        this.logger.error(
          { err: undecodableRecord(error, topic, partition, m.offset) },
          'a record on the bus cannot be read; skipped',
        );
      }
    }
    let settle!: (error?: unknown) => void;
    const settled = new Promise<unknown>((resolve) => (settle = resolve));
    const message: FeatureRowsMessage = {
      batches: rows.length > 0 ? [{ view: codec.view, rows }] : [],
      through: mark,
      part: { view: codec.view, index: partition, count: this.partitions.get(topic)! },
      receivedAt: Date.now(),
      settle,
    };
    for (const listener of this.listeners) await listener(message);
    // The next records are delivered at once; this batch's offset is committed once it settled (its
    // rows in the online store, their predictions in the sinks), after the batches before it.
    const first = batch.messages[0]!.offset;
    const last = batch.messages.at(-1)!.offset;
    resolveOffset(last);
    const key = `${topic}:${partition}`;
    const state = this.commits.get(key) ?? { chain: Promise.resolve(), generation: 0, failures: 0 };
    const generation = state.generation;
    state.chain = state.chain.then(async () => {
      const failure = await settled;
      if (state.generation !== generation) return;
      if (failure !== undefined) {
        // Not served: rewind, so the records from this batch on come again (applied idempotently),
        // after a pause that doubles while they keep failing.
        state.generation++;
        state.failures++;
        const retryInMs = Math.min(MAX_REWIND_PAUSE_MS, 500 * 2 ** (state.failures - 1));
        this.logger.error(
          { err: failure, topic, partition, offset: first, retryInMs },
          'records on the bus were not served; consuming them again',
        );
        this.rewind(topic, partition, first, retryInMs);
        return;
      }
      state.failures = 0;
      this.served.set(key, { topic, partition, offset: (BigInt(last) + 1n).toString() });
      this.commitTimer ??= setTimeout(() => void this.commitServed(), OFFSET_COMMIT_INTERVAL_MS);
    });
    this.commits.set(key, state);
    await heartbeat();
  }

  /** Commits the offsets of every partition's served records in one request, behind the commit under way. */
  private commitServed(): Promise<void> {
    clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    const offsets = [...this.served.values()];
    this.served.clear();
    if (offsets.length === 0) return this.committing;
    this.committing = this.committing.then(async () => {
      try {
        await this.consumer?.commitOffsets(offsets);
      } catch (error) {
        // A partition went to another process meanwhile: it applies these records again, without effect.
        this.logger.warn(
          { err: error, offsets },
          'committing offsets failed; the records will be applied again (idempotently)',
        );
      }
    });
    return this.committing;
  }

  /** Pauses a partition, has it fetched again from `offset`, and resumes it after `pauseMs`. */
  private rewind(topic: string, partition: number, offset: string, pauseMs: number): void {
    const consumer = this.consumer;
    if (!consumer || this.closed) return;
    consumer.pause([{ topic, partitions: [partition] }]);
    consumer.seek({ topic, partition, offset });
    setTimeout(() => {
      if (!this.closed) consumer.resume([{ topic, partitions: [partition] }]);
    }, pauseMs).unref();
  }

  /** Creates the topics that are missing (with the configured partitions) and learns each one's partitions. */
  private ensureTopics(): Promise<void> {
    this.topicsReady ??= this.createTopics().catch((error) => {
      this.topicsReady = undefined;
      throw error;
    });
    return this.topicsReady;
  }

  private async createTopics(): Promise<void> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    const admin = this.admin;
    const existing = new Set(await admin.listTopics());
    const missing = this.topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: this.config.partitions,
          ...(this.config.replicationFactor !== undefined ? { replicationFactor: this.config.replicationFactor } : {}),
        })),
      });
      this.logger.info({ topics: missing, partitions: this.config.partitions }, 'created the bus topics');
    }
    const { topics } = await admin.fetchTopicMetadata({ topics: this.topics as string[] });
    for (const t of topics) this.partitions.set(t.name, t.partitions.length);
  }

  private async connectedProducer(): Promise<Producer> {
    this.producer ??= await connectOrderedProducer(this.kafka);
    return this.producer;
  }

  /** Stops consuming, commits the offsets of what settles, leaves the group and disconnects; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.consumer?.stop().catch(() => undefined);
    // Bounded: records whose offsets stay uncommitted are applied again (idempotently) by the next consumer.
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      Promise.all([...this.commits.values()].map((c) => c.chain))
        .then(() => this.commitServed())
        .then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_COMMIT_WAIT_MS))),
    ]);
    clearTimeout(timer);
    clearTimeout(this.commitTimer);
    if (!waited)
      this.logger.warn(
        { waitedMs: CLOSE_COMMIT_WAIT_MS },
        'records consumed from the bus were not served in time; their offsets stay uncommitted and they are applied again by the next consumer',
      );
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
