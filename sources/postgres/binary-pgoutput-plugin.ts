import type pg from 'pg';
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Lsn } from './lsn.js';
import { quoteIdent } from './pg-connection.js';
import { isRowMessage, parseRowMessage, type RowMessage } from './pgoutput-rows.js';

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
export class BinaryPgoutputPlugin extends PgoutputPlugin {
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
export type StreamMessage =
  | Exclude<Pgoutput.Message, Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete>
  | RowMessage;
