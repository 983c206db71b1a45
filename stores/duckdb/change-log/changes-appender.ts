import {
  BIGINT,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  INTEGER,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
} from '@duckdb/node-api';
import type { Change, ColumnSchema, Row } from '../../../framework/types.js';
import { encodeRow, rowEncoder } from '../../../framework/value-json.js';
import { encodeKey } from './log-keys.js';
import { CHUNK_ROWS } from './typed-layout.js';

/** The columns of `_changes`, in order (see log-schema.ts). */
const CHANGE_COLUMNS = [
  BIGINT,
  VARCHAR,
  VARCHAR,
  VARCHAR,
  VARCHAR,
  VARCHAR,
  UBIGINT,
  UBIGINT,
  TIMESTAMPTZ,
  UBIGINT,
  INTEGER,
  VARCHAR,
];

/** Compiled row encoders per stored schema (by its columns array). */
const rowEncoders = new WeakMap<readonly ColumnSchema[], (row: Row) => string>();
/** Names that `for…in` enumerates first, in numeric order: encodeRow's key order would then differ from column order. */
const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;

/** What the appender needs to know of the stored schemas. */
export interface SchemaSource {
  columnsOf(table: string, version: number): readonly ColumnSchema[] | undefined;
  keyColumnsOf(table: string): readonly string[] | undefined;
}

/**
 * Appends changes stored as JSON (truncates, updates that carry their old row or had unchanged
 * TOASTed values) to `_changes` through data chunks, into the open transaction.
 */
export class ChangesAppender {
  private appended = false;

  private constructor(
    private readonly appender: DuckDBAppender,
    private readonly schemas: SchemaSource,
  ) {}

  static async create(c: DuckDBConnection, schemas: SchemaSource): Promise<ChangesAppender> {
    return new ChangesAppender(await c.createAppender('_changes'), schemas);
  }

  /** Appends changes, the i-th numbered `seqs(i)`. */
  append(changes: readonly Change[], seqs: (i: number) => bigint): void {
    // Consecutive changes mostly share table version, commit time and xid: convert each once per run.
    let table: string | undefined;
    let version = 0;
    let encode = encodeRow;
    let keyColumns: readonly string[] = [];
    let time: bigint | undefined;
    let timeValue: DuckDBTimestampTZValue | undefined;
    let xid: number | undefined;
    let xidValue = 0n;
    for (let start = 0; start < changes.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, changes.length - start);
      const cols: unknown[][] = CHANGE_COLUMNS.map(() => new Array(n));
      for (let i = 0; i < n; i++) {
        const ch = changes[start + i]!;
        cols[0]![i] = seqs(start + i);
        cols[1]![i] = ch.table;
        cols[2]![i] = ch.op;
        if (ch.table !== table || ch.schemaVersion !== version) {
          table = ch.table;
          version = ch.schemaVersion;
          encode = this.rowEncoderOf(table, version);
          keyColumns = this.schemas.keyColumnsOf(table) ?? (ch.key ? Object.keys(ch.key) : []);
        }
        if (ch.commitTime !== time) {
          time = ch.commitTime;
          timeValue = new DuckDBTimestampTZValue(time);
        }
        if (ch.xid !== xid) {
          xid = ch.xid;
          xidValue = BigInt(xid);
        }
        cols[3]![i] = encodeKey(ch.key, keyColumns);
        cols[4]![i] = ch.before === null ? null : encode(ch.before);
        cols[5]![i] = ch.after === null ? null : encode(ch.after);
        cols[6]![i] = ch.position;
        cols[7]![i] = ch.commitPosition;
        cols[8]![i] = timeValue;
        cols[9]![i] = xidValue;
        cols[10]![i] = ch.schemaVersion;
        // An update's old key, so `current_rows` can end the row's old identity (a key change, FULL identity).
        cols[11]![i] = ch.op === 'u' && ch.before !== null ? encodeKey(ch.before, keyColumns) : null;
      }
      const chunk = DuckDBDataChunk.create(CHANGE_COLUMNS, n);
      chunk.setColumns(cols as never);
      this.appender.appendDataChunk(chunk);
      this.appended = true;
    }
  }

  /** Flushes appended rows into the open transaction. */
  flush(): void {
    if (this.appended) this.appender.flushSync();
    this.appended = false;
  }

  /** Drops rows not flushed (a rolled-back transaction). */
  discard(): void {
    this.appended = false;
    try {
      this.appender.clear();
    } catch {
      // The appender may already be empty.
    }
  }

  close(): void {
    try {
      this.appender.closeSync();
    } catch {
      // Closing flushes; nothing is pending outside a transaction.
    }
  }

  /**
   * The compiled encoder of a stored schema version: the same text as encodeRow for rows of those
   * columns, without its per-value dispatch. encodeRow when the version is unknown.
   */
  private rowEncoderOf(table: string, version: number): (row: Row) => string {
    const columns = this.schemas.columnsOf(table, version);
    if (!columns || columns.some((c) => ARRAY_INDEX.test(c.name))) return encodeRow;
    let encode = rowEncoders.get(columns);
    if (!encode) rowEncoders.set(columns, (encode = rowEncoder(columns)));
    return encode;
  }
}
