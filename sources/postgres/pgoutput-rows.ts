/**
 * pgoutput's Insert, Update and Delete messages, read straight from their bytes
 * (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html): the message is
 * only located when it arrives, and its TupleData is decoded by the stream with the relation's
 * decoders. pg-logical-replication's own parser would first build a dictionary of Buffer views per
 * row, the largest cost of the stream after the store.
 */
import type { Row } from '../../framework/types.js';
import type { CopyRowSink } from './copy-binary-parser.js';
import type { Decoder } from './pg-binary.js';

/** An insert, update or delete whose tuples stay in `buf` until decoded. */
export interface RowMessage {
  readonly tag: 'insert' | 'update' | 'delete';
  /** As pg-logical-replication reads it from a Relation message: a signed int32. */
  readonly relationOid: number;
  readonly buf: Buffer;
  /** Offset of the new tuple's TupleData, or -1 (delete). */
  readonly newAt: number;
  /** Offset of the old row's TupleData ('O': the whole old row; 'K': its replica identity), or -1. */
  readonly oldAt: number;
  readonly oldIsKey: boolean;
}

const INSERT = 0x49; // 'I'
const UPDATE = 0x55; // 'U'
const DELETE = 0x44; // 'D'
const KEY = 0x4b; // 'K'
const OLD = 0x4f; // 'O'
const NEW = 0x4e; // 'N'
const NULL = 0x6e; // 'n'
const UNCHANGED = 0x75; // 'u': an unchanged TOASTed value, not sent
const TEXT = 0x74; // 't'
const BINARY = 0x62; // 'b'

/** True for the message tags {@link parseRowMessage} reads. */
export function isRowMessage(buf: Buffer): boolean {
  const tag = buf[0];
  return tag === INSERT || tag === UPDATE || tag === DELETE;
}

/**
 * Locates the tuples of an Insert, Update or Delete message starting at `buf[base]` (its tag byte);
 * the offsets returned are into `buf`, so many messages can share one buffer.
 */
export function parseRowMessage(buf: Buffer, base = 0): RowMessage {
  const code = buf[base];
  const tag = code === INSERT ? 'insert' : code === UPDATE ? 'update' : 'delete';
  const relationOid = buf.readInt32BE(base + 1);
  let newAt = -1;
  let oldAt = -1;
  let oldIsKey = false;
  const sub = buf[base + 5];
  if ((sub === KEY || sub === OLD) && tag !== 'insert') {
    oldIsKey = sub === KEY;
    oldAt = base + 6;
    if (tag === 'update') {
      const p = skipTuple(buf, oldAt);
      if (buf[p] !== NEW) throw new Error(`pgoutput update of relation ${relationOid} has no new tuple`);
      newAt = p + 1;
    }
  } else if (sub === NEW && tag !== 'delete') {
    newAt = base + 6;
  } else {
    throw new Error(`unknown pgoutput ${tag} submessage ${JSON.stringify(String.fromCharCode(sub ?? 0))}`);
  }
  return { tag, relationOid, buf, newAt, oldAt, oldIsKey };
}

/** Where the TupleData starting at `at` ends. */
function skipTuple(buf: Buffer, at: number): number {
  const n = buf.readInt16BE(at);
  let p = at + 2;
  for (let i = 0; i < n; i++) {
    const kind = buf[p++];
    if (kind === BINARY || kind === TEXT) p += 4 + buf.readInt32BE(p);
    else if (kind !== NULL && kind !== UNCHANGED) throw unknownKind(kind);
  }
  return p;
}

/** Kind and bytes of column `index` of the TupleData at `at`, or undefined past its last column. */
function field(buf: Buffer, at: number, index: number): { kind: number; start: number; end: number } | undefined {
  const n = buf.readInt16BE(at);
  let p = at + 2;
  for (let i = 0; i < n; i++) {
    const kind = buf[p++]!;
    let start = p;
    let end = p;
    if (kind === BINARY || kind === TEXT) {
      start = p + 4;
      end = start + buf.readInt32BE(p);
      p = end;
    }
    if (i === index) return { kind, start, end };
  }
  return undefined;
}

/** How a relation's columns decode. */
export interface TupleShape {
  readonly names: readonly string[];
  readonly decoders: readonly Decoder[];
  /** Columns the Relation message flags as part of the key (the only ones a 'K' tuple carries). */
  readonly keyFlags: readonly boolean[];
}

/**
 * Decodes the TupleData at `at` into a row of the columns it sends. NULL is null; an unchanged TOASTed
 * value ('u') is left out, and for a new tuple it takes the old row's value when the message carries
 * one (`old`: the whole old row under REPLICA IDENTITY FULL; with `old.keyOnly`, the old key, which
 * PostgreSQL sends when a key column is TOASTed, for the key columns only), else its column is listed
 * in `unchanged` (filled later from the log). A key tuple (`keyOnly`) gives only the non-null key
 * columns: the others are placeholders.
 */
export function decodeTupleData(
  shape: TupleShape,
  buf: Buffer,
  at: number,
  keyOnly: boolean,
  unchanged?: string[],
  old?: { buf: Buffer; at: number; keyOnly: boolean },
): Row {
  const { names, decoders, keyFlags } = shape;
  const row: Row = {};
  const n = Math.min(buf.readInt16BE(at), names.length);
  let p = at + 2;
  for (let i = 0; i < n; i++) {
    const kind = buf[p++];
    if (kind === BINARY) {
      const len = buf.readInt32BE(p);
      p += 4;
      if (!keyOnly || keyFlags[i]) row[names[i]!] = decoders[i]!(buf, p, p + len);
      p += len;
    } else if (kind === NULL) {
      if (!keyOnly) row[names[i]!] = null;
    } else if (kind === UNCHANGED) {
      if (keyOnly) continue;
      const previous = old && (!old.keyOnly || keyFlags[i]) ? field(old.buf, old.at, i) : undefined;
      if (previous?.kind === BINARY) row[names[i]!] = decoders[i]!(old!.buf, previous.start, previous.end);
      else if (previous?.kind === NULL) row[names[i]!] = null;
      else unchanged?.push(names[i]!);
    } else if (kind === TEXT) {
      throw new Error(
        `pgoutput sent column ${names[i]} as text, but the stream asked for binary values (binary 'true')`,
      );
    } else {
      throw unknownKind(kind);
    }
  }
  return row;
}

/**
 * Writes the TupleData at `at` into `sink` as one row, when it sends every column of the shape in
 * binary or as NULL; returns false, writing nothing, when a value is missing (an unchanged TOASTed
 * value, a column added after the row) or is text.
 */
export function writeTupleColumns(shape: TupleShape, buf: Buffer, at: number, sink: CopyRowSink): boolean {
  const n = buf.readInt16BE(at);
  if (n !== shape.names.length) return false;
  let p = at + 2;
  for (let i = 0; i < n; i++) {
    const kind = buf[p++];
    if (kind === BINARY) p += 4 + buf.readInt32BE(p);
    else if (kind !== NULL) return false;
  }
  p = at + 2;
  for (let i = 0; i < n; i++) {
    if (buf[p++] === NULL) sink.nullField(i);
    else {
      const len = buf.readInt32BE(p);
      sink.field(i, buf, p + 4, p + 4 + len);
      p += 4 + len;
    }
  }
  sink.endRow();
  return true;
}

function unknownKind(kind: number | undefined): Error {
  return new Error(`unknown pgoutput tuple value kind ${JSON.stringify(String.fromCharCode(kind ?? 0))}`);
}
