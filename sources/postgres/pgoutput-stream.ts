import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Logger } from 'pino';
import { AsyncQueue } from '../../framework/async-queue.js';
import { FeatureflowError } from '../../framework/errors.js';
import type { FollowOptions } from '../../framework/interfaces/index.js';
import { formatLsn, parseLsn, type Change, type ChangeBatch, type Lsn, type Row, type TableSchema } from '../../framework/types.js';
import { decoderFor, PgTypeResolver, type Decoder } from './pg-binary.js';
import { columnsFilledWithoutChanges, type CatalogQuery } from './pg-catalog.js';
import { describeServer, quoteIdent, sqlState } from './pg-connection.js';
import { decodeTupleData, isRowMessage, parseRowMessage, writeTupleColumns, type RowMessage } from './pgoutput-rows.js';
import { StreamBatchBuilder } from './stream-batch.js';

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_MICROS = 946_684_800_000_000n;
/** Queued messages above which the socket is paused (back-pressure), and below which it resumes. */
const HIGH_WATER = 10_000;
const LOW_WATER = 2_000;
/** Row messages are copied into shared slabs of this size; larger ones get a buffer of their own. */
const SLAB_SIZE = 1 << 20;
const OWN_COPY_ABOVE = SLAB_SIZE >> 4;
/** XLogData header ('w', int64 start LSN, int64 end LSN, int64 send time) before each message. */
const XLOG_HEADER = 25;
const XLOG_DATA = 0x77;

/**
 * pgoutput with `binary 'true'` (PostgreSQL 14+): tuple values arrive in the same binary send format as
 * `COPY … (FORMAT binary)`, so one decoder serves snapshot and stream, and pg's global text parsers
 * (which turn int8 into strings and timestamptz into millisecond Dates) never see a value.
 */
class BinaryPgoutputPlugin extends PgoutputPlugin {
  /**
   * The start LSN of the message last parsed, read from its XLogData header (pg-logical-replication
   * emits it as text right after parse), or undefined when the header could not be reached.
   */
  lsn: Lsn | undefined;
  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  private slabUsed = 0;
  /** A view of the whole memory the last chunk lives in, to read its header from. */
  private chunkMemory: ArrayBufferLike | undefined;
  private chunkView: Buffer | undefined;

  /**
   * node-postgres hands copyData chunks as views into its read buffer, which it compacts and reuses
   * for the next socket read; messages are decoded later, so each one gets its own copy first (row
   * messages into a shared slab: one allocation per megabyte rather than per message).
   */
  override parse(buffer: Buffer): Pgoutput.Message {
    this.lsn = this.headerLsn(buffer);
    // Inserts, updates and deletes are only located here; the stream decodes their bytes (pgoutput-rows.ts).
    if (!isRowMessage(buffer)) return super.parse(Buffer.from(buffer));
    const length = buffer.length;
    if (length > OWN_COPY_ABOVE) return parseRowMessage(Buffer.from(buffer)) as unknown as Pgoutput.Message;
    if (this.slabUsed + length > SLAB_SIZE) {
      // Messages still queued keep the old slab alive until decoded; decoded values never share it.
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.slabUsed = 0;
    }
    const at = this.slabUsed;
    this.slab.set(buffer, at);
    this.slabUsed = at + length;
    return parseRowMessage(this.slab, at) as unknown as Pgoutput.Message;
  }

  /** pg-logical-replication passes `chunk.subarray(25)`: the header sits just before `buffer`. */
  private headerLsn(buffer: Buffer): Lsn | undefined {
    const offset = buffer.byteOffset - XLOG_HEADER;
    if (offset < 0) return undefined;
    if (buffer.buffer !== this.chunkMemory) {
      this.chunkMemory = buffer.buffer;
      this.chunkView = Buffer.from(buffer.buffer);
    }
    const view = this.chunkView!;
    return view[offset] === XLOG_DATA ? view.readBigUInt64BE(offset + 1) : undefined;
  }

  override start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const pubs = this.options.publicationNames.map((p) => p.replaceAll("'", "''")).join(',');
    const sql =
      `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lastLsn} ` +
      `(proto_version '${this.options.protoVersion}', publication_names '${pubs}', binary 'true')`;
    return client.query(sql);
  }
}

/** What the plugin above emits: pg-logical-replication's messages, except for row changes. */
type StreamMessage = Exclude<Pgoutput.Message, Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete> | RowMessage;

type QueueItem =
  | { kind: 'data'; lsn: Lsn; msg: StreamMessage }
  | { kind: 'keepalive'; walEnd: Lsn; replyRequested: boolean };

interface RelationState {
  schema: TableSchema & { version: number };
  decoders: Decoder[];
  names: string[];
  /** Per column: flagged as key by the Relation message (what a 'K' tuple carries). */
  keyFlags: boolean[];
  /** The table's changes committed before this are in its own later snapshot (FollowOptions.tableStarts). */
  start: Lsn;
}

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
  readonly knownSchemas: ReadonlyMap<string, TableSchema & { version: number }>;
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

function sameSchema(a: TableSchema, b: TableSchema): boolean {
  return (
    a.columns.length === b.columns.length &&
    // The type OID too: text → varchar decodes alike but is a different column type for readers.
    a.columns.every((c, i) => {
      const d = b.columns[i]!;
      return c.name === d.name && c.typeOid === d.typeOid && c.type === d.type && c.array === d.array;
    }) &&
    a.keyColumns.join('\0') === b.keyColumns.join('\0')
  );
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
  private readonly relations = new Map<number, RelationState>();
  private readonly plugin: BinaryPgoutputPlugin;
  private readonly latest = new Map<string, TableSchema & { version: number }>();
  private confirmed: Lsn;
  private paused = false;
  /** Data messages in the queue (keepalives aside): a commit followed only by keepalives ends a burst. */
  private queuedData = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly ctx: StreamContext, private readonly from: Lsn) {
    this.confirmed = from;
    this.plugin = new BinaryPgoutputPlugin({ protoVersion: 1, publicationNames: [ctx.publication] });
    for (const [table, schema] of ctx.knownSchemas) this.latest.set(table, schema);
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
    if (code !== undefined) return this.queue.fail(error);
    const reason = (error as { code?: string; message?: string })?.code ?? (error as Error)?.message ?? String(error);
    this.queue.fail(
      new FeatureflowError('FF_PG_REPLICATION', `the replication connection to ${where} was lost (${reason}); reconnecting from the checkpoint`, {
        cause: error,
      }),
    );
  }

  private sendStatus(replyRequested: boolean): void {
    const connection = (this.service as unknown as { _connection?: { sendCopyFromChunk(b: Buffer): void } })._connection;
    if (!connection || this.stopped) return;
    try {
      connection.sendCopyFromChunk(standbyStatus(this.confirmed, replyRequested));
    } catch (error) {
      this.fail(error);
    }
  }

  private setPaused(paused: boolean): void {
    const stream = (this.service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })._connection?.stream;
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
    const statusEvery = Math.max(50, Math.min(ctx.heartbeatMs, ctx.walSenderTimeoutMs > 0 ? ctx.walSenderTimeoutMs / 3 : Infinity));
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

    const built = new StreamBatchBuilder({ changes: options.changes ?? true, utf8Server: ctx.utf8Server, batchSize: ctx.batchSize });
    let schemas: (TableSchema & { version: number })[] = [];
    let txn: { commitLsn: Lsn; commitTime: bigint; xid: number; skip: boolean } | undefined;
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
            const filled = await this.onRelation(msg, schemas, txn?.commitLsn);
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
                const change = built.wantsChanges ? this.decodeRowChange(state, msg, item.lsn, txn) : undefined;
                built.addRow(group, msg.tag === 'insert' ? 'c' : msg.tag === 'update' ? 'u' : 'd', item.lsn, txn.commitLsn, txn.commitTime, txn.xid, change);
                break;
              }
            }
            const change = this.decodeRowChange(state, msg, item.lsn, txn);
            // Unchanged TOASTed values are filled from the row's last image, which the store finds
            // among typed rows only once they are written: those go in a batch of their own first.
            if (change.unchangedToast && built.hasRows) yield take();
            built.addChange(change);
            break;
          }
          case 'truncate':
            if (!txn || txn.skip) break;
            for (const change of this.decodeTruncate(msg, item.lsn, txn)) {
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
            if (built.size >= ctx.batchSize || this.queuedData === 0 || (until !== undefined && end >= until) || rereads) {
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

  /**
   * Takes a Relation message: a new schema version when the shape changed. Returns the columns it
   * added that rows already in the table hold a value in without changes in the stream (a default),
   * if any: the table is then to be read again.
   */
  private async onRelation(
    msg: Pgoutput.MessageRelation,
    schemas: (TableSchema & { version: number })[],
    commitLsn: Lsn | undefined,
  ): Promise<{ table: string; columns: string[] } | undefined> {
    const table = `${msg.schema}.${msg.name}`;
    if (!this.ctx.tables.has(table)) return undefined;
    let filled: string[] = [];
    const previous = this.latest.get(table);
    const columns = [];
    for (const col of msg.columns) {
      let resolved: { type: string; array: boolean };
      try {
        resolved = await this.ctx.resolver.resolve(col.typeOid, this.ctx.catalog);
      } catch (error) {
        throw new FeatureflowError(
          'FF_PG_TYPE_UNSUPPORTED',
          `column ${table}.${col.name} now has a type (oid ${col.typeOid}) that featureflow cannot decode exactly; ` +
            'change the column type back, or drop the column',
          { cause: error },
        );
      }
      columns.push({ name: col.name, ...resolved, typeOid: col.typeOid, key: false });
    }
    const names = columns.map((c) => c.name);
    // pgoutput flags key columns in table order (under REPLICA IDENTITY FULL it flags every column),
    // while the catalog gives the primary key in index order: keep the known key while it still fits,
    // or a composite key's encoding (and so every row's identity in the log) would change.
    let keyColumns = msg.keyColumns;
    if (previous && previous.keyColumns.every((k) => names.includes(k))) {
      const sameSet = keyColumns.length === previous.keyColumns.length && previous.keyColumns.every((k) => keyColumns.includes(k));
      if (sameSet || msg.replicaIdentity === 'full') keyColumns = [...previous.keyColumns];
    }
    const candidate = { table, columns: columns.map((c) => ({ ...c, key: keyColumns.includes(c.name) })), keyColumns };
    let schema: TableSchema & { version: number };
    const start = this.ctx.tableStarts.get(table) ?? 0n;
    if (previous && sameSchema(previous, candidate)) schema = previous;
    else if (commitLsn !== undefined && commitLsn < start) {
      // The transaction's changes of the table are in the table's own later snapshot (and skipped):
      // the shape it had then is no version of the log. A change after that snapshot comes with a
      // Relation message of its own whenever the shape differs from the snapshot's.
      schema = { ...candidate, version: previous?.version ?? 0 };
    } else {
      schema = { ...candidate, version: (previous?.version ?? 0) + 1 };
      this.latest.set(table, schema);
      schemas.push(schema);
      this.ctx.logger.info({ table, version: schema.version }, 'table schema changed in the stream');
      // PostgreSQL gives the rows that existed before the ALTER the default without writing a change:
      // the table is to be read again once this transaction is durable.
      const added = previous ? names.filter((n) => !previous.columns.some((c) => c.name === n)) : [];
      if (added.length > 0) filled = await columnsFilledWithoutChanges(this.ctx.catalog, table, added);
    }
    this.relations.set(msg.relationOid, {
      schema,
      decoders: schema.columns.map((c) => decoderFor(c.type, c.array)),
      names,
      keyFlags: msg.columns.map((c) => (c.flags & 1) === 1),
      start,
    });
    return filled.length > 0 ? { table, columns: filled } : undefined;
  }

  private keyOf(state: RelationState, row: Row): Row {
    const key: Row = {};
    for (const k of state.schema.keyColumns) key[k] = row[k] ?? null;
    return key;
  }

  private decodeTruncate(msg: Pgoutput.MessageTruncate, lsn: Lsn, txn: { commitLsn: Lsn; commitTime: bigint; xid: number }): Change[] {
    const out: Change[] = [];
    const common = { lsn, commitLsn: txn.commitLsn, commitTime: txn.commitTime, xid: txn.xid };
    for (const rel of msg.relations) {
      const state = this.relations.get(rel.relationOid);
      if (!state || txn.commitLsn < state.start) continue;
      out.push({ ...common, table: state.schema.table, op: 't', key: null, before: null, after: null, schemaVersion: state.schema.version });
    }
    return out;
  }

  /** The change of an insert, update or delete of a captured relation. */
  private decodeRowChange(state: RelationState, msg: RowMessage, lsn: Lsn, txn: { commitLsn: Lsn; commitTime: bigint; xid: number }): Change {
    const { buf, newAt, oldAt, oldIsKey } = msg;
    // Literal objects (one shape for every change), not spreads: this runs once per row.
    const { table, version: schemaVersion } = state.schema;
    const { commitLsn, commitTime, xid } = txn;
    if (msg.tag === 'insert') {
      const after = decodeTupleData(state, buf, newAt, false);
      return { lsn, commitLsn, commitTime, xid, table, schemaVersion, op: 'c', key: this.keyOf(state, after), before: null, after };
    } else if (msg.tag === 'update') {
      const unchanged: string[] = [];
      // pgoutput sends 'u' for an unchanged TOASTed value: the old row's value under REPLICA IDENTITY
      // FULL ('O'), a key column's from the old key ('K', sent when the key is TOASTed), else listed in
      // unchangedToast and filled later from the last known row.
      const after = decodeTupleData(state, buf, newAt, false, unchanged, oldAt >= 0 ? { buf, at: oldAt, keyOnly: oldIsKey } : undefined);
      const before = oldAt >= 0 ? decodeTupleData(state, buf, oldAt, oldIsKey) : null;
      const unknownKey = unchanged.find((c) => state.schema.keyColumns.includes(c));
      if (unknownKey !== undefined) {
        throw new FeatureflowError(
          'FF_TOAST_UNFILLED',
          `an update of ${table} left its TOASTed key column ${unknownKey} unchanged and PostgreSQL sent no old key to tell ` +
            'the row by; set REPLICA IDENTITY FULL on the table, then take a new snapshot: `featureflow teardown --yes`, then `featureflow ingest`',
        );
      }
      const change: Change = { lsn, commitLsn, commitTime, xid, table, schemaVersion, op: 'u', key: this.keyOf(state, after), before, after };
      if (unchanged.length > 0) change.unchangedToast = unchanged;
      return change;
    } else {
      const before = decodeTupleData(state, buf, oldAt, oldIsKey);
      return { lsn, commitLsn, commitTime, xid, table, schemaVersion, op: 'd', key: this.keyOf(state, before), before, after: null };
    }
  }
}
