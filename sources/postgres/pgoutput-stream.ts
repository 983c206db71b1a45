import type pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Logger } from 'pino';
import { AsyncQueue } from '../../framework/async-queue.js';
import { FeatureflowError } from '../../framework/errors.js';
import type { FollowOptions } from '../../framework/interfaces/index.js';
import type { ChangeBatch, VersionedSchema } from '../../framework/types.js';
import { BinaryPgoutputPlugin, type StreamMessage } from './binary-pgoutput-plugin.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import type { PgTypeResolver } from './pg-types.js';
import type { CatalogQuery } from './pg-catalog.js';
import { describeServer, sqlState } from './pg-connection.js';
import { writeTupleColumns } from './pgoutput-rows.js';
import { translatePgError } from './postgres-errors.js';
import { RelationTable, type Txn } from './relation-table.js';
import { StreamBatchBuilder } from './stream-batch.js';

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_MICROS = 946_684_800_000_000n;
/** Queued messages above which the socket is paused (back-pressure), and below which it resumes. */
const HIGH_WATER = 10_000;
const LOW_WATER = 2_000;

type QueueItem =
  | { kind: 'data'; lsn: Lsn; msg: StreamMessage }
  | { kind: 'keepalive'; walEnd: Lsn; replyRequested: boolean };

/** Everything the stream needs from its owner. */
export interface StreamContext {
  readonly clientConfig: pg.ClientConfig;
  readonly slot: string;
  readonly publication: string;
  readonly tables: ReadonlySet<string>;
  readonly batchSize: number;
  readonly heartbeatMs: number;
  /** The server's wal_sender_timeout in ms (0: none). */
  readonly walSenderTimeoutMs: number;
  /** True when the server encoding is UTF-8: text values are then stored as the bytes received. */
  readonly utf8Server: boolean;
  readonly resolver: PgTypeResolver;
  readonly catalog: CatalogQuery;
  readonly logger: Logger;
  /** Latest schema per table already stored, to number new versions after them. */
  readonly knownSchemas: ReadonlyMap<string, VersionedSchema>;
  /** Per table added to a running log, its snapshot's LSN: its changes committed before are skipped (see FollowOptions). */
  readonly tableStarts: ReadonlyMap<string, Lsn>;
}

/** Builds the 34-byte standby status update ('r'): write, flush and apply positions and the clock. */
function standbyStatus(lsn: Lsn, replyRequested: boolean): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = 0x72;
  buf.writeBigUInt64BE(lsn, 1);
  buf.writeBigUInt64BE(lsn, 9);
  buf.writeBigUInt64BE(lsn, 17);
  buf.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_MICROS, 25);
  buf[33] = replyRequested ? 1 : 0;
  return buf;
}

/**
 * One replication session: START_REPLICATION from a checkpoint, decode pgoutput into bounded change
 * batches, answer the server with standby status updates carrying only durable positions.
 *
 * pg-logical-replication's own acknowledgement is off (`auto: false`, `timeoutSeconds: 0`): its timer
 * would acknowledge the last *received* LSN (and adds 1 to it), which could confirm a change before it
 * is durable. Status updates are sent here, from a timer, so they continue while the socket is paused
 * for back-pressure (the walsender times out after wal_sender_timeout without them).
 */
export class PgoutputStream {
  private readonly queue = new AsyncQueue<QueueItem>();
  private readonly service: LogicalReplicationService;
  private readonly relations: RelationTable;
  private readonly plugin: BinaryPgoutputPlugin;
  private confirmed: Lsn;
  private paused = false;
  /** Data messages in the queue (keepalives aside): a commit followed only by keepalives ends a burst. */
  private queuedData = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly ctx: StreamContext,
    private readonly from: Lsn,
  ) {
    this.confirmed = from;
    this.plugin = new BinaryPgoutputPlugin({ protoVersion: 1, publicationNames: [ctx.publication] });
    this.relations = new RelationTable(ctx);
    this.service = new LogicalReplicationService(ctx.clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: false },
    });
    this.service.on('data', (lsn: string, msg: StreamMessage) => {
      this.queue.push({ kind: 'data', lsn: this.plugin.lsn ?? parseLsn(lsn), msg });
      this.queuedData++;
      if (!this.paused && this.queue.length > HIGH_WATER) this.setPaused(true);
    });
    this.service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      this.queue.push({ kind: 'keepalive', walEnd: parseLsn(lsn), replyRequested: shouldRespond });
    });
    this.service.on('error', (error: unknown) => this.fail(error));
  }

  /** Confirms a durable position to the server (sent now and repeated by the status timer). */
  confirm(lsn: Lsn): void {
    if (lsn > this.confirmed) this.confirmed = lsn;
    this.sendStatus(false);
  }

  /**
   * Ends the session with a failure, coded. node-postgres reports a connection cut by a server
   * shutdown or a network fault as a plain Error without a SQLSTATE ("Connection terminated
   * unexpectedly"): that is the retriable FF_PG_REPLICATION, so the engine reconnects and resumes.
   */
  private fail(error: unknown): void {
    if (error instanceof FeatureflowError) return this.queue.fail(error);
    const where = describeServer(this.ctx.clientConfig);
    const code = sqlState(error);
    if (code === '42704') {
      // undefined_object: START_REPLICATION names a slot that is gone.
      return this.queue.fail(
        new FeatureflowError(
          'FF_PG_SLOT_LOST',
          `replication slot ${this.ctx.slot} no longer exists on ${where}; changes since the checkpoint may be gone from the WAL. ` +
            'Run `featureflow ingest` again to take a new snapshot',
          { cause: error },
        ),
      );
    }
    if (code !== undefined) return this.queue.fail(translatePgError(error, where));
    const reason = (error as { code?: string; message?: string })?.code ?? (error as Error)?.message ?? String(error);
    this.queue.fail(
      new FeatureflowError(
        'FF_PG_REPLICATION',
        `the replication connection to ${where} was lost (${reason}); reconnecting from the checkpoint`,
        {
          cause: error,
        },
      ),
    );
  }

  private sendStatus(replyRequested: boolean): void {
    const connection = (this.service as unknown as { _connection?: { sendCopyFromChunk(b: Buffer): void } })
      ._connection;
    if (!connection || this.stopped) return;
    try {
      connection.sendCopyFromChunk(standbyStatus(this.confirmed, replyRequested));
    } catch (error) {
      this.fail(error);
    }
  }

  private setPaused(paused: boolean): void {
    const stream = (this.service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })
      ._connection?.stream;
    if (!stream) return;
    this.paused = paused;
    if (paused) stream.pause();
    else stream.resume();
  }

  /** Stops the session and closes its connection; idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.service.destroy().catch(() => undefined);
    this.queue.end();
  }

  /**
   * Yields batches of the transactions that commit after `from`, in storage form (`stored`; with
   * `options.changes`, also as changes). A batch is cut at `batchSize` changes, mid-transaction if
   * need be (`complete: false`), or at a commit when nothing more is queued. While idle, an empty
   * complete batch carries the server's WAL position as a heartbeat checkpoint, so the slot does not
   * hold WAL back when the captured tables are quiet.
   */
  async *batches(options: FollowOptions = {}): AsyncGenerator<ChangeBatch> {
    const { ctx } = this;
    this.service.subscribe(this.plugin, ctx.slot, formatLsn(this.from)).then(
      () => this.queue.fail(new FeatureflowError('FF_PG_REPLICATION', 'the replication stream ended')),
      (error: unknown) => this.fail(error),
    );
    const until = options.until;
    let minCommitTime = options.minCommitTime ?? 0n;
    // A status reply goes out at least three times per wal_sender_timeout, whatever the consumer is
    // doing (the walsender ends a stream it has not heard from for that long). A reply is requested
    // (a keepalive carrying the server's position) every heartbeat, and often while catching up so an
    // idle server reveals its position quickly.
    const statusEvery = Math.max(
      50,
      Math.min(ctx.heartbeatMs, ctx.walSenderTimeoutMs > 0 ? ctx.walSenderTimeoutMs / 3 : Infinity),
    );
    const tick = until !== undefined ? Math.min(100, statusEvery) : statusEvery;
    let lastRequest = 0;
    this.timer = setInterval(() => {
      const now = Date.now();
      const request = until !== undefined || now - lastRequest >= ctx.heartbeatMs - tick / 2;
      if (request) lastRequest = now;
      this.sendStatus(request);
    }, tick);
    const onAbort = () => this.queue.end();
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const built = new StreamBatchBuilder({ utf8Server: ctx.utf8Server, batchSize: ctx.batchSize });
    let schemas: VersionedSchema[] = [];
    let txn: Txn | undefined;
    let checkpoint = this.from;
    let lastHeartbeat = Date.now();
    // Tables to read again (ChangeBatch.rereads), handed out with the batch that completes their transaction.
    let rereads: Record<string, string[]> | undefined;
    const take = () => {
      const complete = txn === undefined;
      let batch = built.take(complete, checkpoint, schemas);
      schemas = [];
      if (complete && rereads) {
        batch = { ...batch, rereads };
        rereads = undefined;
      }
      return batch;
    };
    try {
      while (true) {
        if (options.signal?.aborted && txn === undefined) return;
        const item = await this.queue.take(tick);
        if (item?.kind === 'data') this.queuedData--;
        if (this.paused && this.queue.length < LOW_WATER) this.setPaused(false);
        if (item === undefined) {
          if (this.queue.done) return;
          if (txn === undefined && built.size > 0) yield take();
          continue;
        }
        if (item.kind === 'keepalive') {
          // The walsender sends a keepalive whenever it catches up; while we lag, data follows it.
          if (txn === undefined && built.size > 0 && this.queuedData === 0) yield take();
          if (item.replyRequested) this.sendStatus(false);
          const idle = txn === undefined && built.size === 0 && this.queue.length === 0;
          const due = until !== undefined || Date.now() - lastHeartbeat >= ctx.heartbeatMs;
          if (idle && item.walEnd > checkpoint && due) {
            lastHeartbeat = Date.now();
            checkpoint = item.walEnd;
            yield take();
          }
          // Everything sent before this keepalive is applied; past `until`, the catch-up is complete.
          if (idle && until !== undefined && item.walEnd >= until) return;
          continue;
        }
        const msg = item.msg;
        switch (msg.tag) {
          case 'begin': {
            // Commit times follow commit order (see FollowOptions.minCommitTime).
            const pgTime = msg.commitTime as unknown as bigint;
            const commitTime = pgTime < minCommitTime ? minCommitTime : pgTime;
            txn = {
              commitLsn: parseLsn(msg.commitLsn!),
              commitTime,
              xid: msg.xid,
              // Transactions whose commit record lies before the checkpoint are already in the log.
              skip: parseLsn(msg.commitLsn!) < this.from,
            };
            if (!txn.skip) minCommitTime = commitTime;
            break;
          }
          case 'relation': {
            const filled = await this.relations.onRelation(msg, schemas, txn?.commitLsn);
            if (filled && txn && !txn.skip) (rereads ??= {})[filled.table] = filled.columns;
            break;
          }
          case 'insert':
          case 'update':
          case 'delete': {
            if (!txn || txn.skip) break;
            const state = this.relations.get(msg.relationOid);
            if (!state || txn.commitLsn < state.start) break;
            // Cut a full batch only when another change follows, so that a transaction ending
            // exactly at the batch size completes in its last batch (not in an empty one after it).
            if (built.size >= ctx.batchSize) yield take();
            // An insert, or an update without the old row: its new row goes column-wise when complete;
            // a delete: its old row (the key, or every column under REPLICA IDENTITY FULL).
            if (msg.tag === 'delete' || msg.oldAt < 0) {
              const group = built.groupOf(state.schema);
              if (writeTupleColumns(state, msg.buf, msg.tag === 'delete' ? msg.oldAt : msg.newAt, group.columns)) {
                built.addRow(
                  group,
                  msg.tag === 'insert' ? 'c' : msg.tag === 'update' ? 'u' : 'd',
                  item.lsn,
                  txn.commitLsn,
                  txn.commitTime,
                  txn.xid,
                );
                break;
              }
            }
            const change = this.relations.decodeRowChange(state, msg, item.lsn, txn);
            // Unchanged TOASTed values are filled from the row's last image, which the store finds
            // among typed rows only once they are written: those go in a batch of their own first.
            if (change.unchangedToast && built.hasRows) yield take();
            built.addChange(change);
            break;
          }
          case 'truncate':
            if (!txn || txn.skip) break;
            for (const change of this.relations.decodeTruncate(msg, item.lsn, txn)) {
              if (built.size >= ctx.batchSize) yield take();
              built.addChange(change);
            }
            break;
          case 'commit': {
            const end = parseLsn(msg.commitEndLsn!);
            const skipped = txn?.skip ?? false;
            txn = undefined;
            if (skipped) break;
            checkpoint = end;
            // Cut at a commit when the batch is full or no more change data is waiting (latency), or
            // when tables are to be read again.
            if (
              built.size >= ctx.batchSize ||
              this.queuedData === 0 ||
              (until !== undefined && end >= until) ||
              rereads
            ) {
              yield take();
            }
            if (until !== undefined && end >= until && built.size === 0) return;
            break;
          }
          default:
            break;
        }
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await this.stop();
    }
  }
}
