import { inject, injectable } from 'inversify';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import { createKafka } from '../../clients/kafka/index.js';
import { AsyncQueue } from '../../framework/async-queue.js';
import { FeatureflowError } from '../../framework/errors.js';
import type {
  FollowOptions,
  PrepareOptions,
  PrepareResult,
  Source,
  SourceRecord,
  SourceStatus,
  TeardownResult,
} from '../../framework/interfaces/index.js';
import { TOKENS } from '../../framework/tokens.js';
import type { Change, ChangeBatch, Position, TableSchema } from '../../framework/types.js';
import { Deduplicator } from './deduplicator.js';
import { type Fetched, startFetching } from './batch-fetcher.js';
import { decodeRecord, type RecordChange } from './debezium-record.js';
import { kafkaCall, undecodable } from './debezium-topics-errors.js';
import { readFirstSchemas } from './first-schemas.js';
import { TableShapes } from './debezium-shapes.js';
import { DEBEZIUM_TOPICS_CONFIG, type ResolvedDebeziumTopicsConfig } from './debezium-topics-config.js';
import { type Offsets, offsetsFromJson, offsetsToJson, positionOf, reached, tp } from './kafka-offsets.js';

/** What the change log records of this source: its topics, the tables' first schemas, the offsets reached. */
interface TopicsRecord {
  readonly kind: 'debezium-topics';
  readonly group: string;
  readonly topics: Readonly<Record<string, string>>;
  readonly schemas: Readonly<Record<string, TableSchema>>;
  /** Offsets of the next records to read, as of the checkpoint (absent before the first stream batch). */
  readonly offsets?: Readonly<Record<string, string>>;
}

/**
 * Debezium's change topics on Kafka as a change source: it has no snapshot of its own (Debezium's
 * snapshot reads, op `r`, are in the topics), so the log starts empty and every record comes through
 * {@link follow}, from the earliest offsets. Each fetched batch of one partition becomes one
 * ChangeBatch, complete on its own: Debezium spreads a PostgreSQL transaction over topics and
 * partitions and nothing in a partition says where its part ends, so the unit that is applied
 * atomically is a batch of records, and a row's changes keep their order (Debezium keys records by
 * primary key, so one row stays on one partition). Positions and exactly-once: see `kafka-offsets.ts`.
 */
@injectable()
export class DebeziumTopicsSource implements Source {
  private readonly kafka: Kafka;
  private admin: Admin | undefined;
  private consumer: Consumer | undefined;
  private record: TopicsRecord | undefined;
  /** Offsets of batches handed out and not yet confirmed, by their position. */
  private readonly handedOut = new Map<Position, Offsets>();
  /** The high watermarks `currentPosition` saw, by the position it returned. */
  private readonly heads = new Map<Position, Offsets>();
  private closed = false;

  constructor(
    @inject(DEBEZIUM_TOPICS_CONFIG) private readonly config: ResolvedDebeziumTopicsConfig,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {
    this.logger = logger.child({ component: 'debezium-topics' });
    this.kafka = createKafka(config.kafka, this.logger);
  }

  private async connectedAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      await kafkaCall(this.config, 'connecting to Kafka', () => admin.connect());
      this.admin = admin;
    }
    return this.admin;
  }

  async prepare(options: PrepareOptions): Promise<PrepareResult> {
    const previous = options.record?.kind === 'debezium-topics' ? (options.record as unknown as TopicsRecord) : null;
    const topics = Object.fromEntries(this.config.streams.map((s) => [s.table, s.topic]));
    const known = previous?.schemas ?? {};
    const missing = this.config.streams.filter((s) => !known[s.table] || previous?.topics[s.table] !== s.topic);
    const schemas = { ...known };
    for (const [table, schema] of await readFirstSchemas(
      this.kafka,
      await this.connectedAdmin(),
      this.config,
      missing.map((s) => s.table),
    ))
      schemas[table] = schema;
    const record: TopicsRecord =
      previous && missing.length === 0
        ? previous
        : {
            kind: 'debezium-topics',
            group: this.config.group,
            topics,
            schemas,
            ...(previous?.offsets ? { offsets: previous.offsets } : {}),
          };
    this.record = record;
    return {
      tables: this.config.streams.map((s) => schemas[s.table]!),
      resumable: previous !== null,
      record: record as unknown as SourceRecord,
    };
  }

  /** Every partition of the topics with its earliest and next-to-be-written offsets. */
  private async partitions(): Promise<{ key: string; topic: string; partition: number; low: bigint; high: bigint }[]> {
    const admin = await this.connectedAdmin();
    const out = [];
    for (const { topic } of this.config.streams) {
      const offsets = await kafkaCall(this.config, `reading the offsets of ${topic}`, () =>
        admin.fetchTopicOffsets(topic),
      );
      for (const p of offsets)
        out.push({
          key: tp(topic, p.partition),
          topic,
          partition: p.partition,
          low: BigInt(p.low),
          high: BigInt(p.high),
        });
    }
    return out;
  }

  async *follow(from: Position, options: FollowOptions = {}): AsyncGenerator<ChangeBatch> {
    const record = this.record!;
    const partitions = await this.partitions();
    // From 0 the log is new: every partition from its earliest record. Else where the log's record says.
    const stored = from === 0n ? new Map<string, bigint>() : offsetsFromJson(record.offsets);
    if (from !== 0n && positionOf(stored) !== from) {
      throw new FeatureflowError(
        'FF_KAFKA_OFFSETS_GONE',
        `the change log's checkpoint (${from}) does not match the Kafka offsets it recorded; start a new change log`,
      );
    }
    const next: Offsets = new Map();
    for (const p of partitions) {
      const at = stored.get(p.key) ?? p.low;
      if (at < p.low) {
        throw new FeatureflowError(
          'FF_KAFKA_OFFSETS_GONE',
          `${p.topic}/${p.partition}: the change log resumes at offset ${at}, but Kafka keeps records from ${p.low} only ` +
            '(retention deleted the ones between); raise the topic’s retention, and start a new change log ' +
            '(delete the store file) to read the topics again from their start',
        );
      }
      next.set(p.key, at);
    }
    const target = options.until === undefined ? undefined : this.heads.get(options.until);
    const caughtUp = () =>
      options.until !== undefined && (target ? reached(next, target) : positionOf(next) >= options.until);
    if (caughtUp()) return;

    const shapes = new TableShapes(options.schemas ?? [], this.config.columnTypes);
    // Rebuilt by every follow from the records before the resume point: a batch that failed before it
    // was durable must not leave its changes marked as seen.
    const dedup = new Deduplicator();
    const tableOf = new Map(this.config.streams.map((s) => [s.topic, s.table]));
    let lastTime = options.minCommitTime ?? 0n;
    const queue = new AsyncQueue<Fetched>();
    const stopped = { value: false };
    // Reading starts at each partition's earliest record: those before the resume point are not
    // applied again, only shown to the deduplicator, so that a duplicate Debezium sent of a change
    // applied in an earlier run is still recognised.
    const earliest: Offsets = new Map(partitions.map((p) => [p.key, p.low]));
    const consumer = await startFetching(
      this.kafka,
      await this.connectedAdmin(),
      this.config,
      earliest,
      queue,
      stopped,
    );
    this.consumer = consumer;
    try {
      while (!options.signal?.aborted) {
        const item = await queue.take(200);
        if (!item) {
          if (queue.done) break;
          continue;
        }
        try {
          const { batch } = item;
          const key = tp(batch.topic, batch.partition);
          const table = tableOf.get(batch.topic)!;
          let offset = next.get(key) ?? 0n;
          let position = positionOf(next);
          const changes: Change[] = [];
          let failure: unknown;
          for (const message of batch.messages) {
            const at = BigInt(message.offset);
            if (at < offset) {
              // Applied in an earlier run: only remembered (a record that fails to decode was not applied either).
              try {
                for (const change of decodeRecord(table, message, this.config, shapes)) dedup.fresh(change);
              } catch {}
              continue;
            }
            let decoded: RecordChange[];
            try {
              decoded = decodeRecord(table, message, this.config, shapes);
            } catch (error) {
              // The records before it are applied first: the error leaves the log right before it.
              failure = undecodable(error, batch.topic, batch.partition, message.offset);
              break;
            }
            position += at + 1n - offset;
            offset = at + 1n;
            for (const change of decoded) {
              if (!dedup.fresh(change)) continue;
              // Commit times never go back: Debezium's are per record, and feature history follows read order.
              const { lsn: _lsn, ...rest } = change;
              if (rest.commitTime > lastTime) lastTime = rest.commitTime;
              changes.push({ ...rest, commitTime: lastTime, position, commitPosition: position });
            }
          }
          // A batch of records applied earlier changes nothing.
          if (offset === next.get(key)) {
            if (failure) throw failure;
            continue;
          }
          next.set(key, offset);
          const offsets = new Map(next);
          const checkpoint = positionOf(offsets);
          this.handedOut.set(checkpoint, offsets);
          yield {
            groups: [],
            changes,
            changeIndexes: changes.map((_, i) => i),
            size: changes.length,
            complete: true,
            checkpoint,
            schemas: shapes.takeNew(),
            sourceRecord: { ...record, offsets: offsetsToJson(offsets) },
          } satisfies ChangeBatch;
          this.record = { ...record, offsets: offsetsToJson(offsets) };
          if (failure) throw failure;
        } finally {
          item.done();
        }
        if (caughtUp()) break;
      }
    } finally {
      stopped.value = true;
      queue.end();
      for (let item = queue.peek(); item; item = queue.peek()) (await queue.take())?.done();
      this.consumer = undefined;
      await consumer.disconnect().catch(() => undefined);
    }
  }

  async currentPosition(): Promise<Position> {
    const heads: Offsets = new Map();
    for (const p of await this.partitions()) heads.set(p.key, p.high);
    const position = positionOf(heads);
    this.heads.set(position, heads);
    return position;
  }

  confirm(position: Position): void {
    const offsets = this.handedOut.get(position);
    for (const p of this.handedOut.keys()) if (p <= position) this.handedOut.delete(p);
    const consumer = this.consumer;
    if (!offsets || !consumer) return;
    // For lag monitoring only: the change log's offsets are the ones featureflow resumes from.
    const entries = [...offsets].map(([key, offset]) => ({
      topic: key.slice(0, key.lastIndexOf(':')),
      partition: Number(key.slice(key.lastIndexOf(':') + 1)),
      offset: offset.toString(),
    }));
    consumer.commitOffsets(entries).catch((error: unknown) => {
      this.logger.debug(
        { err: (error as Error).message },
        'committing the group offsets failed (they are for monitoring only)',
      );
    });
  }

  async status(record: SourceRecord | null): Promise<SourceStatus> {
    const heads: Offsets = new Map();
    for (const p of await this.partitions()) heads.set(p.key, p.high);
    const stored =
      record?.kind === 'debezium-topics' ? offsetsFromJson((record as unknown as TopicsRecord).offsets) : null;
    const head = positionOf(heads);
    const confirmed = stored ? positionOf(stored) : null;
    return {
      confirmed,
      head,
      lag: confirmed === null ? null : Number(head - confirmed),
      lagUnit: 'records',
      holds: { [`consumer group ${this.config.group}`]: 'offsets committed after each durable batch' },
    };
  }

  async teardown(record: SourceRecord | null): Promise<TeardownResult> {
    const topics = this.config.streams.map((s) => `topic ${s.topic}`);
    if (record?.kind !== 'debezium-topics') return { dropped: [], leftAlone: topics };
    const group = (record as unknown as TopicsRecord).group;
    const admin = await this.connectedAdmin();
    await kafkaCall(this.config, `deleting consumer group ${group}`, () => admin.deleteGroups([group])).catch(
      () => undefined,
    );
    // The topics are Debezium's: never deleted.
    return { dropped: [`consumer group ${group}`], leftAlone: topics };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.consumer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
