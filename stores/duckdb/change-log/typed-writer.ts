import duckdb from '@duckdb/node-bindings';
import {
  DuckDBDataChunk,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
} from '@duckdb/node-api';
import {
  FIXED_WIDTH,
  type ColumnRows,
  type FixedColumn,
  type ListColumn,
  type TextColumn,
} from '../../../framework/column-rows.js';
import { ValidityMask } from '../chunk-columns.js';
import { quoteIdent } from '../duckdb-database.js';
import { appendChunk, insertChunks, type StagedChunk } from '../staged-insert.js';
import { CHUNK_ROWS, INLINE_MAX, ONE_CALL_MAX, typedTableDdl, type TypedLayout } from './typed-layout.js';

/**
 * Most bytes of rows a writer holds before they should be flushed into the open transaction (where
 * DuckDB's buffer pool holds them, spilling beyond its limit). Each flush has a fixed cost (it plans
 * and runs an insert): at 4 MB, narrow rows flush every ~25k rows, images every ~5k. 16 MB (with 8 MB
 * in the history writer) only held more: the 300k-image snapshot peaked at 425 MB against 442–452 MB,
 * the 1M mixed-row snapshot at 296 MB against 343 MB and no slower (bench/images.ts, bench/snapshot.ts).
 */
const FLUSH_BYTES = 4 * 1024 * 1024;

/** About how many bytes `rows` take in DuckDB's vectors (16-byte string and list entries, their data). */
function appendedBytes(rows: ColumnRows, layout: TypedLayout): number {
  const n = rows.length;
  let bytes = 0;
  for (const m of layout.meta) bytes += m.width * n;
  for (const column of rows.columns) {
    switch (column.kind) {
      case 'value':
        for (const v of column.values) bytes += 16 + (v?.length ?? 0);
        break;
      case 'text':
      case 'json':
      case 'plain-text':
      case 'bytes':
        bytes += 16 * n + column.offsets[n]! - column.offsets[0]!;
        break;
      case 'list': {
        const [from, to] = [column.offsets[0]!, column.offsets[n]!];
        const e = column.elements;
        bytes +=
          16 * n +
          ('data' in e ? FIXED_WIDTH[e.kind]! * (to - from) : 16 * (to - from) + e.offsets[to]! - e.offsets[from]!);
        break;
      }
      default:
        bytes += FIXED_WIDTH[column.kind]! * n;
    }
  }
  return bytes;
}

/** Rows appended and not flushed yet, with their meta columns (see {@link TypedTableWriter.append}). */
interface Held {
  readonly rows: ColumnRows;
  readonly meta: readonly Uint8Array[];
}

/**
 * How a writer hands its rows to DuckDB. `staged`: held until {@link TypedTableWriter.flush}, which
 * inserts them with one INSERT that DuckDB runs on its own threads, asking for each data chunk
 * (staged-insert.ts): the event loop stays free, for the stream's small commits while the process
 * serves them (a commit of more than 512, or one nobody is served during, goes through an appender
 * when flushed, see `insertChunks`). `appender`: copied
 * into an appender's data chunks at once and flushed on this thread, which costs less per row: a
 * table's snapshot (1M mixed rows: 406k rows/s against 331k staged, and less memory, bench/snapshot.ts).
 */
export type WriteMode = 'staged' | 'appender';

/** Appends column-wise rows to a typed table, each data chunk written straight into its vectors. */
export class TypedTableWriter {
  private readonly types: DuckDBType[];
  private held: Held[] = [];
  /** About how many bytes the writer holds since its last flush (in the appender, or staged). */
  private heldBytes = 0;
  /** Rows are in the appender since its last flush. */
  private appended = false;
  /** The data chunk each append to an appender fills (the appender copies what it is given). */
  private chunk: DuckDBDataChunk | undefined;
  /**
   * A chunk's worth of inlined strings, and the rows of the longer ones (see appendText); grown for
   * the elements of a chunk's lists, which may be more.
   */
  private inline = new Uint8Array(CHUNK_ROWS * 16);
  private inlineWords = new Uint32Array(this.inline.buffer);
  private longRows = new Int32Array(CHUNK_ROWS);
  /** A chunk's list entries (`duckdb_list_entry`: uint64 offset, uint64 length). */
  private readonly listEntries = new Uint32Array(CHUNK_ROWS * 4);

  private constructor(
    private readonly c: DuckDBConnection,
    private readonly storage: string,
    private readonly layout: TypedLayout,
    private readonly appender: DuckDBAppender | undefined,
  ) {
    this.types = [
      ...layout.meta.map((m) => m.type),
      ...layout.stored.flatMap((s) => (s.override ? [s.type, VARCHAR] : [s.type])),
    ];
  }

  /** Creates the storage table (inside the caller's transaction), replacing any, and a writer to it. */
  static async create(
    c: DuckDBConnection,
    storage: string,
    layout: TypedLayout,
    mode: WriteMode,
  ): Promise<TypedTableWriter> {
    await c.run(`DROP TABLE IF EXISTS ${quoteIdent(storage)}`);
    await c.run(typedTableDdl(storage, layout));
    return TypedTableWriter.open(c, storage, layout, mode);
  }

  /** A writer to existing storage. */
  static async open(
    c: DuckDBConnection,
    storage: string,
    layout: TypedLayout,
    mode: WriteMode,
  ): Promise<TypedTableWriter> {
    return new TypedTableWriter(c, storage, layout, mode === 'appender' ? await c.createAppender(storage) : undefined);
  }

  /**
   * Appends `rows`; `meta` holds, per meta column of the layout, the little-endian bytes of every
   * row's value (`width` bytes each). Staged, the arrays must not change until {@link flush}.
   */
  append(rows: ColumnRows, meta: readonly Uint8Array[]): void {
    if (rows.length === 0) return;
    this.heldBytes += appendedBytes(rows, this.layout);
    if (!this.appender) {
      this.held.push({ rows, meta });
      return;
    }
    this.appended = true;
    this.chunk ??= DuckDBDataChunk.create(this.types);
    for (const staged of this.chunksOf([{ rows, meta }])) appendChunk(this.appender, this.chunk, staged);
  }

  /**
   * True once the writer holds {@link FLUSH_BYTES}: the caller flushes then, so that a table's
   * snapshot (one transaction) goes to DuckDB's buffer pool, which spills, rather than piling up here
   * (DuckDB's appender holds what it is given outside its buffer pool and memory limit until flushed:
   * ~170 MB for 200k rows of 784-byte images).
   */
  get full(): boolean {
    return this.heldBytes >= FLUSH_BYTES;
  }

  /**
   * Inserts what was appended since the last flush into the open transaction; staged, a small
   * write leaves the calling thread free while DuckDB inserts it unless `keepThreadFree` is false
   * (see `insertChunks`).
   */
  async flush(keepThreadFree = true): Promise<void> {
    this.heldBytes = 0;
    if (this.appender) {
      if (this.appended) this.appender.flushSync();
      this.appended = false;
      return;
    }
    if (this.held.length === 0) return;
    const held = this.held;
    this.held = [];
    let rows = 0;
    for (const h of held) rows += h.rows.length;
    await insertChunks(
      this.c,
      this.storage,
      this.types,
      rows,
      this.chunksOf(held),
      () => (this.chunk ??= DuckDBDataChunk.create(this.types)),
      keepThreadFree,
    );
  }

  /** Closes the writer; call after {@link flush}. */
  close(): void {
    this.appender?.closeSync();
  }

  /** Drops what is held and closes the writer (the transaction is being rolled back). */
  discard(): void {
    this.held = [];
    this.heldBytes = 0;
    if (!this.appender) return;
    try {
      this.appender.clear();
      this.appender.closeSync();
    } catch {
      // The table goes with the transaction either way.
    }
  }

  /** The held rows in data chunks of at most {@link CHUNK_ROWS}, each written when DuckDB asks for it. */
  private *chunksOf(held: readonly Held[]): Generator<StagedChunk> {
    for (const { rows, meta } of held)
      for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
        const n = Math.min(CHUNK_ROWS, rows.length - start);
        yield { length: n, fill: (chunk) => this.write(chunk, rows, meta, start, n) };
      }
  }

  /** Rows [start, start + n) of `rows` (and `meta`) into `chunk`'s vectors. */
  private write(chunk: DuckDBDataChunk, rows: ColumnRows, meta: readonly Uint8Array[], start: number, n: number): void {
    const vectors = this.types.map((_, i) => duckdb.data_chunk_get_vector(chunk.chunk, i));
    let v = 0;
    this.layout.meta.forEach((m, i) => {
      const bytes = meta[i]!;
      duckdb.copy_data_to_vector(
        vectors[v++]!,
        0,
        bytes.buffer as ArrayBuffer,
        bytes.byteOffset + start * m.width,
        n * m.width,
      );
    });
    this.layout.stored.forEach((s, i) => {
      const column = rows.columns[i]!;
      const vector = vectors[v++]!;
      const validity = new ValidityMask(n);
      switch (column.kind) {
        case 'value':
          for (let r = 0; r < n; r++) {
            const text = column.values[start + r];
            if (text === null || text === undefined) validity.setNull(r);
            else duckdb.vector_assign_string_element(vector, r, text);
          }
          break;
        case 'text':
        case 'json':
        case 'plain-text':
        case 'bytes':
          this.appendText(vector, column, start, n, validity);
          break;
        case 'list':
          this.appendList(vector, column, start, n, validity);
          break;
        default:
          this.appendFixed(vector, column, start, n, validity);
      }
      // Only fixed-width and list columns have overrides.
      if (s.override) writeOverrides(vectors[v++]!, (column as FixedColumn | ListColumn).overrides, start, n, validity);
      setValidity(vector, validity);
    });
  }

  /** Rows [start, start + n) of a fixed-width column (or of list elements) into `vector`, copied in one call. */
  private appendFixed(vector: duckdb.Vector, column: FixedColumn, start: number, n: number, validity: ValidityMask) {
    const { kind, data, nulls } = column;
    const width = FIXED_WIDTH[kind]!;
    duckdb.copy_data_to_vector(vector, 0, data.buffer as ArrayBuffer, data.byteOffset + start * width, n * width);
    if (nulls) for (let r = 0; r < n; r++) if (nulls[start + r]) validity.setNull(r);
  }

  /**
   * Rows [start, start + n) of a list column into `vector`: the rows' entries (offset and length in
   * the child vector) in one copy, then their elements, all of them, into the child vector as a
   * column of the element's layout is written (one copy for fixed widths, one string heap for text).
   */
  private appendList(vector: duckdb.Vector, column: ListColumn, start: number, n: number, validity: ValidityMask) {
    const { elements, offsets, nulls } = column;
    const first = offsets[start]!;
    const total = offsets[start + n]! - first;
    const entries = this.listEntries;
    for (let r = 0; r < n; r++) {
      if (nulls?.[start + r]) validity.setNull(r);
      const from = offsets[start + r]!;
      entries[r * 4] = from - first;
      entries[r * 4 + 1] = 0;
      entries[r * 4 + 2] = offsets[start + r + 1]! - from;
      entries[r * 4 + 3] = 0;
    }
    duckdb.copy_data_to_vector(vector, 0, entries.buffer as ArrayBuffer, 0, n * 16);
    duckdb.list_vector_reserve(vector, total);
    duckdb.list_vector_set_size(vector, total);
    if (total === 0) return;
    const child = duckdb.list_vector_get_child(vector);
    const childValidity = new ValidityMask(total);
    if ('data' in elements) this.appendFixed(child, elements, first, total, childValidity);
    else this.appendText(child, elements, first, total, childValidity);
    setValidity(child, childValidity);
  }

  /**
   * Rows [start, start + n) of a text column into `vector` as DuckDB's `duckdb_string_t` entries
   * (uint32 length, then either the bytes themselves, zero-padded, when they fit in 12, or a 4-byte
   * prefix and a pointer), all written with one copy. The longer strings' bytes are handed to DuckDB
   * in one piece, the rows' whole byte range assigned to row 0, which puts it in the vector's string
   * heap; that copy's address, read back from row 0's entry, then gives each long string's pointer.
   * One call per chunk instead of one per string: the per-string N-API call cost ~150 ns, ~0.3 s per
   * 1M rows of two long text columns. The heap lives until the chunk is reset, after the appender has
   * copied the strings.
   */
  private appendText(
    vector: duckdb.Vector,
    column: TextColumn,
    start: number,
    n: number,
    validity: ValidityMask,
  ): void {
    const { bytes, offsets, nulls } = column;
    if (this.longRows.length < n) {
      this.inline = new Uint8Array(n * 16);
      this.inlineWords = new Uint32Array(this.inline.buffer);
      this.longRows = new Int32Array(n);
    }
    const inline = this.inline;
    const words = this.inlineWords;
    inline.fill(0, 0, n * 16);
    let longRows = 0;
    for (let r = 0; r < n; r++) {
      if (nulls?.[start + r]) {
        validity.setNull(r);
        continue;
      }
      const from = offsets[start + r]!;
      const length = offsets[start + r + 1]! - from;
      const at = r * 16;
      words[r * 4] = length;
      if (length > INLINE_MAX) {
        this.longRows[longRows++] = r;
        for (let i = 0; i < 4; i++) inline[at + 4 + i] = bytes[from + i]!;
        continue;
      }
      for (let i = 0; i < length; i++) inline[at + 4 + i] = bytes[from + i]!;
    }
    const base = offsets[start]!;
    const total = offsets[start + n]! - base;
    const oneCall = total <= ONE_CALL_MAX;
    if (longRows > 0 && oneCall) {
      // More than 12 bytes in all (a long string is among them): never inlined, so row 0 holds a pointer.
      duckdb.vector_assign_string_element_len(vector, 0, bytes.subarray(base, base + total));
      const head = duckdb.vector_get_data(vector, 16);
      const low = (head[8]! | (head[9]! << 8) | (head[10]! << 16) | (head[11]! << 24)) >>> 0;
      const high = (head[12]! | (head[13]! << 8) | (head[14]! << 16) | (head[15]! << 24)) >>> 0;
      for (let k = 0; k < longRows; k++) {
        const r = this.longRows[k]!;
        const pointer = low + (offsets[start + r]! - base);
        const carry = pointer >= 4294967296 ? 1 : 0;
        words[r * 4 + 2] = pointer - carry * 4294967296;
        words[r * 4 + 3] = high + carry;
      }
    }
    duckdb.copy_data_to_vector(vector, 0, inline.buffer as ArrayBuffer, 0, n * 16);
    // Rows whose bytes are too many for one string (DuckDB's lengths are 32-bit): one call per long string.
    for (let k = 0; !oneCall && k < longRows; k++) {
      const r = this.longRows[k]!;
      duckdb.vector_assign_string_element_len(vector, r, bytes.subarray(offsets[start + r]!, offsets[start + r + 1]!));
    }
  }
}

/** `seq` values `first`, `first + 1`, … for `length` rows, as little-endian int64 bytes (seq stays far below 2^53). */
export function consecutiveSeqBytes(first: bigint, length: number): Uint8Array {
  return seqBytes(length, Number(first), (r) => r);
}

/** `seq` values `base + 1 + positions[r]`, as little-endian int64 bytes. */
export function positionedSeqBytes(base: bigint, positions: Int32Array): Uint8Array {
  return seqBytes(positions.length, Number(base) + 1, (r) => positions[r]!);
}

function seqBytes(length: number, first: number, offset: (row: number) => number): Uint8Array {
  const words = new Int32Array(length * 2);
  for (let r = 0; r < length; r++) {
    const seq = first + offset(r);
    const hi = Math.floor(seq / 4294967296);
    words[r * 2] = seq - hi * 4294967296;
    words[r * 2 + 1] = hi;
  }
  return new Uint8Array(words.buffer);
}

/**
 * The override column of rows [start, start + n): null but for the overridden rows (mostly none),
 * which are null in the native column (`validity`) instead.
 */
function writeOverrides(
  vector: duckdb.Vector,
  overrides: ReadonlyMap<number, string> | undefined,
  start: number,
  n: number,
  validity: ValidityMask,
): void {
  const overridden = new ValidityMask(n);
  overridden.bytes = new Uint8Array(Math.ceil(n / 64) * 8);
  if (overrides) {
    for (const [row, text] of overrides) {
      if (row < start || row >= start + n) continue;
      const r = row - start;
      validity.setNull(r);
      overridden.bytes[r >> 3]! |= 1 << (r & 7);
      duckdb.vector_assign_string_element(vector, r, text);
    }
  }
  setValidity(vector, overridden);
}

function setValidity(vector: duckdb.Vector, mask: ValidityMask): void {
  if (!mask.bytes) return;
  duckdb.vector_ensure_validity_writable(vector);
  duckdb.copy_data_to_vector_validity(
    vector,
    0,
    mask.bytes.buffer as ArrayBuffer,
    mask.bytes.byteOffset,
    mask.bytes.byteLength,
  );
}
