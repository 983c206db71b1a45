/**
 * Streaming parser of `COPY … TO STDOUT (FORMAT binary)` output
 * (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4).
 *
 * The stream is: an 11-byte signature, int32 flags, int32 header-extension length and the extension;
 * then per row an int16 field count and per field an int32 length (-1 = NULL) and the bytes; then the
 * trailer, a field count of -1. Chunks may split anything anywhere: rows inside a chunk are decoded in
 * place, and only the bytes of a row (or header) that straddles chunks are copied aside.
 */
import type { Value } from '../../framework/types.js';
import type { Decoder } from './pg-binary.js';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags, extension length. */
const HEADER_FIXED = 19;
/** Flag bit 16: every row carries an OID (tables WITH OIDS, gone since PostgreSQL 12). */
const FLAG_OIDS = 1 << 16;
/** Parts of a straddling row above this size are not kept for reuse once the row is decoded. */
const KEEP_PENDING = 1 << 20;

const enum State {
  Header,
  Rows,
  Done,
}

/** Receives the fields of each row a {@link CopyBinaryParser} frames, in column order. */
export interface CopyRowSink {
  /** Column `column` of the current row is `buf[start, end)`; the bytes are only valid during the call. */
  field(column: number, buf: Buffer, start: number, end: number): void;
  /** Column `column` of the current row is NULL. */
  nullField(column: number): void;
  /** The current row is complete. */
  endRow(): void;
}

/** A sink decoding each field with one {@link Decoder} per column and handing out rows of values. */
export class ValueRowSink implements CopyRowSink {
  private values: Value[];
  onRow: (values: Value[]) => void = () => {};

  constructor(private readonly decoders: readonly Decoder[]) {
    this.values = new Array(decoders.length);
  }

  field(column: number, buf: Buffer, start: number, end: number): void {
    this.values[column] = this.decoders[column]!(buf, start, end);
  }

  nullField(column: number): void {
    this.values[column] = null;
  }

  endRow(): void {
    const values = this.values;
    this.values = new Array(this.decoders.length);
    this.onRow(values);
  }
}

/**
 * Frames the rows of one binary COPY stream and hands each field to a {@link CopyRowSink}; given
 * decoders instead, hands out rows of decoded values.
 *
 * @example
 * const parser = new CopyBinaryParser(columns.map((c) => decoderFor(c.type, c.array)));
 * for await (const chunk of client.query(copyTo(`COPY (SELECT …) TO STDOUT (FORMAT binary)`))) {
 *   parser.push(chunk, (values) => rows.push(values));
 * }
 * parser.end();
 */
export class CopyBinaryParser {
  private readonly sink: CopyRowSink;
  private readonly columns: number;
  private state = State.Header;
  /** Bytes of a header or row that started in an earlier chunk: pending[0, pendingLength). */
  private pending: Buffer = Buffer.alloc(0);
  private pendingLength = 0;
  private count = 0;

  constructor(decodersOrSink: readonly Decoder[] | CopyRowSink, columns?: number) {
    if (Array.isArray(decodersOrSink)) {
      this.sink = new ValueRowSink(decodersOrSink as readonly Decoder[]);
      this.columns = decodersOrSink.length;
    } else {
      if (columns === undefined) throw new TypeError('CopyBinaryParser: a sink needs the number of columns');
      this.sink = decodersOrSink as CopyRowSink;
      this.columns = columns;
    }
  }

  /** Rows framed so far. */
  get rows(): number {
    return this.count;
  }

  /**
   * Frames every row completed by `chunk` and hands it to the sink; with decoders, `onRow` gets one
   * value per column, in order.
   */
  push(chunk: Buffer, onRow?: (values: Value[]) => void): void {
    if (onRow && this.sink instanceof ValueRowSink) this.sink.onRow = onRow;
    let pos = 0;
    const end = chunk.length;
    if (this.pendingLength > 0 || this.state === State.Header) {
      pos = this.completePending(chunk);
      if (pos < 0) return;
    }
    if (this.state === State.Done) {
      if (pos < end) throw new Error(`binary COPY stream has ${end - pos} bytes after its trailer`);
      return;
    }
    const sink = this.sink;
    const ncols = this.columns;
    while (pos < end) {
      if (end - pos < 2) break;
      const count = ((chunk[pos]! << 24) >> 16) | chunk[pos + 1]!;
      if (count !== ncols) {
        if (count === -1) {
          this.state = State.Done;
          pos += 2;
          if (pos < end) throw new Error(`binary COPY stream has ${end - pos} bytes after its trailer`);
          return;
        }
        throw this.countError(count);
      }
      // Only a row wholly inside the chunk is handed out from here; the rest waits in `pending`.
      const rowEnd = completeRowEnd(chunk, pos, end, ncols);
      if (rowEnd < 0) break;
      let p = pos + 2;
      for (let i = 0; i < ncols; i++) {
        const len = (chunk[p]! << 24) | (chunk[p + 1]! << 16) | (chunk[p + 2]! << 8) | chunk[p + 3]!;
        p += 4;
        if (len < 0) {
          if (len !== -1) throw new Error(`invalid field length ${len} in binary COPY row ${this.count + 1}`);
          sink.nullField(i);
        } else {
          sink.field(i, chunk, p, p + len);
          p += len;
        }
      }
      this.count++;
      sink.endRow();
      pos = rowEnd;
    }
    if (pos < end) this.append(chunk, pos, end);
  }

  /** Checks that the stream ended with its trailer. @throws Error when it was truncated. */
  end(): void {
    if (this.state !== State.Done) {
      throw new Error(
        `binary COPY stream ended ${this.state === State.Header ? 'inside its header' : 'before its trailer'} ` +
          `after ${this.count} rows (${this.pendingLength} bytes of an incomplete ${this.state === State.Header ? 'header' : 'row'}); ` +
          'the COPY was interrupted',
      );
    }
  }

  /**
   * Appends to the pending bytes only as much of `chunk` as the header or row needs (as far as its
   * length fields tell), decodes it once complete, and returns where the rest of `chunk` starts
   * (-1 when the chunk was used up).
   */
  private completePending(chunk: Buffer): number {
    let pos = 0;
    for (;;) {
      const need = this.state === State.Header ? this.headerLength() : this.pendingRowLength();
      if (need <= this.pendingLength) break;
      if (pos >= chunk.length) return -1;
      const take = Math.min(need - this.pendingLength, chunk.length - pos);
      this.append(chunk, pos, pos + take);
      pos += take;
    }
    const buf = this.pending;
    if (this.state === State.Header) {
      this.checkHeader(buf);
      this.state = State.Rows;
    } else if (this.pendingLength === 2 && buf.readInt16BE(0) === -1) {
      this.state = State.Done;
    } else {
      let p = 2;
      for (let i = 0; i < this.columns; i++) {
        const len = buf.readInt32BE(p);
        p += 4;
        if (len < 0) this.sink.nullField(i);
        else this.sink.field(i, buf, p, p + len);
        if (len > 0) p += len;
      }
      this.count++;
      this.sink.endRow();
    }
    this.pendingLength = 0;
    if (this.pending.length > KEEP_PENDING) this.pending = Buffer.alloc(0);
    return pos;
  }

  /** Total header length as far as known from the pending bytes (a lower bound until complete). */
  private headerLength(): number {
    if (this.pendingLength >= SIGNATURE.length) this.checkSignature();
    if (this.pendingLength < HEADER_FIXED) return HEADER_FIXED;
    const extension = this.pending.readInt32BE(15);
    if (extension < 0) throw new Error(`invalid binary COPY header extension length ${extension}`);
    return HEADER_FIXED + extension;
  }

  /** Total length of the pending row as far as its length fields are known (a lower bound until complete). */
  private pendingRowLength(): number {
    const buf = this.pending;
    const have = this.pendingLength;
    if (have < 2) return 2;
    const count = buf.readInt16BE(0);
    if (count === -1) return 2;
    if (count !== this.columns) throw this.countError(count);
    let p = 2;
    for (let i = 0; i < count; i++) {
      if (p + 4 > have) return p + 4;
      const len = buf.readInt32BE(p);
      p += 4 + Math.max(len, 0);
    }
    return p;
  }

  private checkSignature(): void {
    if (!this.pending.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
      throw new Error(
        'not a binary COPY stream: the PGCOPY signature is missing; use COPY … TO STDOUT (FORMAT binary)',
      );
    }
  }

  private checkHeader(buf: Buffer): void {
    const flags = buf.readInt32BE(11);
    if (flags & FLAG_OIDS)
      throw new Error('binary COPY stream includes row OIDs, which featureflow does not read; copy without OIDS');
    // Bits 17-31 flag format changes a reader must not ignore; bits 0-15 are reserved and ignorable.
    if (flags & ~0x1ffff)
      throw new Error(`binary COPY stream has unknown critical header flags 0x${(flags >>> 0).toString(16)}`);
  }

  private append(chunk: Buffer, start: number, end: number): void {
    const n = end - start;
    if (this.pendingLength + n > this.pending.length) {
      const grown = Buffer.allocUnsafe(Math.max(256, this.pendingLength + n, this.pending.length * 2));
      this.pending.copy(grown, 0, 0, this.pendingLength);
      this.pending = grown;
    }
    chunk.copy(this.pending, this.pendingLength, start, end);
    this.pendingLength += n;
  }

  private countError(count: number): Error {
    return new Error(`binary COPY row ${this.count + 1} has ${count} fields but ${this.columns} decoders were given`);
  }
}

/** End of the row at `pos` when all of it is in `chunk[pos, end)`, else -1. */
function completeRowEnd(chunk: Buffer, pos: number, end: number, ncols: number): number {
  let p = pos + 2;
  for (let i = 0; i < ncols; i++) {
    if (p + 4 > end) return -1;
    const len = (chunk[p]! << 24) | (chunk[p + 1]! << 16) | (chunk[p + 2]! << 8) | chunk[p + 3]!;
    p += 4 + Math.max(len, 0);
    if (p > end) return -1;
  }
  return p;
}
