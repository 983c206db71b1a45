/**
 * Binary COPY fields straight into column-wise snapshot rows ({@link ColumnRows}): fixed-width values
 * are byte-swapped into little-endian buffers, text and bytea are copied as bytes, and a
 * one-dimensional array's elements go the same ways into one buffer of elements, so most fields never
 * become a JS value. Values a layout cannot hold exactly (±infinity, years outside 1000–9999, an array
 * of more dimensions or holding such an element) go through the column's Value decoder into the
 * column's overrides.
 */
import {
  FIXED_WIDTH,
  TIMETZ_OFFSET_MAX,
  columnKind,
  type ColumnKind,
  type ColumnRows,
  type FixedColumn,
  type RowColumn,
  type TextColumn,
} from '../../framework/column-rows.js';
import type { ColumnSchema } from '../../framework/types.js';
import { encodeValue } from '../../framework/value-json.js';
import type { CopyRowSink } from './copy-binary-parser.js';
import { decoderFor, int16At, int32At, uint16At, uint32At, type Decoder } from './pg-binary.js';
import { numericTextBound, writeNumericText } from './pg-numeric.js';

const TWO_32 = 4294967296;
/** µs from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
const EPOCH_SHIFT_US = 946_684_800_000_000;
const SHIFT_HI = Math.floor(EPOCH_SHIFT_US / TWO_32);
const SHIFT_LO = EPOCH_SHIFT_US - SHIFT_HI * TWO_32;
/** Days from 1970-01-01 to 2000-01-01. */
const EPOCH_SHIFT_DAYS = 10_957;
const MS_PER_DAY = 86_400_000;
/** PostgreSQL days (since 2000-01-01) of 1000-01-01 and 9999-12-31: the range stored natively. */
const DAY_MIN = (Date.UTC(1000, 0, 1) - Date.UTC(2000, 0, 1)) / MS_PER_DAY;
const DAY_MAX = (Date.UTC(9999, 11, 31) - Date.UTC(2000, 0, 1)) / MS_PER_DAY;
/**
 * Bounds on the high 32 bits of a PostgreSQL timestamp (µs since 2000-01-01) that keep it inside
 * 1000-01-01 … 9999-12-31: a value whose high word is inside is in range (a few values next to the
 * bounds take the override path, which is always exact).
 */
const TS_HI_MIN = Math.floor((DAY_MIN * MS_PER_DAY * 1000) / TWO_32) + 1;
const TS_HI_MAX = Math.floor(((DAY_MAX + 1) * MS_PER_DAY * 1000) / TWO_32) - 1;
const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

/** Writes one column's fields for rows 0, 1, … of the batch being built. */
interface ColumnWriter {
  write(row: number, buf: Buffer, start: number, end: number): void;
  writeNull(row: number): void;
  /** The column for rows [0, length); the writer starts a new batch, with room for `capacity` rows. */
  take(length: number, capacity: number): RowColumn;
  /** Makes room for `capacity` rows, keeping those written. */
  grow(capacity: number): void;
}

/** A writer of array elements (a row per element): it stores what it can hold, or says it cannot. */
interface ElementWriter extends ColumnWriter {
  /** Writes the field natively and returns true, or returns false (writing nothing) when it cannot. */
  store(row: number, buf: Buffer, start: number, end: number): boolean;
  /** Forgets the rows from `length` on (they are written again). */
  truncate(length: number): void;
  take(length: number, capacity: number): FixedColumn | TextColumn;
}

class FixedWriter implements ElementWriter {
  private data!: Uint8Array;
  private i16!: Int16Array;
  private i32!: Int32Array;
  private u32!: Uint32Array;
  private nulls: Uint8Array | undefined;
  private overrides: Map<number, string> | undefined;
  private readonly width: number;

  constructor(
    private readonly kind: FixedColumn['kind'],
    private capacity: number,
    /** The Value decoder, for overrides. */
    private readonly decode: Decoder,
  ) {
    this.width = FIXED_WIDTH[kind]!;
    this.reset();
  }

  private reset(): void {
    this.setData(new Uint8Array(this.capacity * this.width));
    this.nulls = undefined;
    this.overrides = undefined;
  }

  private setData(data: Uint8Array): void {
    this.data = data;
    this.i16 = new Int16Array(data.buffer, 0, data.byteLength >> 1);
    this.i32 = new Int32Array(data.buffer, 0, data.byteLength >> 2);
    this.u32 = new Uint32Array(data.buffer, 0, data.byteLength >> 2);
  }

  grow(capacity: number): void {
    const data = new Uint8Array(capacity * this.width);
    data.set(this.data);
    this.setData(data);
    if (this.nulls) this.nulls = grown(this.nulls, capacity);
    this.capacity = capacity;
  }

  write(row: number, buf: Buffer, s: number, end: number): void {
    if (!this.store(row, buf, s, end)) this.override(row, buf, s, end);
  }

  store(row: number, buf: Buffer, s: number, _end: number): boolean {
    const d = this.data;
    switch (this.kind) {
      case 'int16':
        this.i16[row] = int16At(buf, s);
        return true;
      case 'int32':
        this.i32[row] = int32At(buf, s);
        return true;
      case 'uint32':
        this.u32[row] = uint32At(buf, s);
        return true;
      case 'bool':
        d[row] = buf[s] !== 0 ? 1 : 0;
        return true;
      case 'float32': {
        // -0 goes to the overrides: DuckDB's run-length encoding takes -0 and 0 for one value.
        if (buf[s] === 0x80 && buf[s + 1] === 0 && uint16At(buf, s + 2) === 0) return false;
        const o = row * 4;
        d[o] = buf[s + 3]!;
        d[o + 1] = buf[s + 2]!;
        d[o + 2] = buf[s + 1]!;
        d[o + 3] = buf[s]!;
        return true;
      }
      case 'float64':
        if (buf[s] === 0x80 && buf[s + 1] === 0 && uint16At(buf, s + 2) === 0 && uint32At(buf, s + 4) === 0)
          return false;
        this.u32[row * 2] = uint32At(buf, s + 4);
        this.u32[row * 2 + 1] = uint32At(buf, s);
        return true;
      case 'int64':
      case 'time':
        // time_send: int64 µs since midnight.
        this.u32[row * 2] = uint32At(buf, s + 4);
        this.i32[row * 2 + 1] = int32At(buf, s);
        return true;
      case 'date': {
        const day = int32At(buf, s);
        if (day < DAY_MIN || day > DAY_MAX) return false;
        this.i32[row] = day + EPOCH_SHIFT_DAYS;
        return true;
      }
      case 'timestamp':
      case 'timestamptz': {
        const hi = int32At(buf, s);
        if (hi < TS_HI_MIN || hi > TS_HI_MAX) return false;
        let lo = uint32At(buf, s + 4) + SHIFT_LO;
        let carry = 0;
        if (lo >= TWO_32) {
          lo -= TWO_32;
          carry = 1;
        }
        this.u32[row * 2] = lo;
        this.i32[row * 2 + 1] = hi + SHIFT_HI + carry;
        return true;
      }
      case 'timetz': {
        // timetz_send: int64 µs since midnight (below 2^37), int32 zone in seconds WEST of UTC.
        const offset = TIMETZ_OFFSET_MAX + int32At(buf, s + 8);
        if (offset < 0 || offset > 2 * TIMETZ_OFFSET_MAX) return false;
        const hi = int32At(buf, s);
        const lo = uint32At(buf, s + 4);
        this.u32[row * 2] = (((lo & 0xff) << 24) | offset) >>> 0;
        this.u32[row * 2 + 1] = ((hi << 24) | (lo >>> 8)) >>> 0;
        return true;
      }
      case 'interval': {
        // interval_send: int64 µs, int32 days, int32 months. Months at an int32 bound are PostgreSQL
        // 17's infinite intervals (every field at its bound): overrides, as is anything next to them.
        const months = int32At(buf, s + 12);
        if (months === INT32_MAX || months === INT32_MIN) return false;
        const o = row * 4;
        this.i32[o] = months;
        this.i32[o + 1] = int32At(buf, s + 8);
        this.u32[o + 2] = uint32At(buf, s + 4);
        this.i32[o + 3] = int32At(buf, s);
        return true;
      }
    }
  }

  truncate(length: number): void {
    this.nulls?.fill(0, length);
  }

  private override(row: number, buf: Buffer, start: number, end: number): void {
    (this.overrides ??= new Map()).set(row, encodeValue(this.decode(buf, start, end)));
  }

  writeNull(row: number): void {
    (this.nulls ??= new Uint8Array(this.capacity))[row] = 1;
  }

  take(length: number, capacity: number): FixedColumn {
    const column: FixedColumn = {
      kind: this.kind,
      data: this.data.subarray(0, length * this.width),
      nulls: this.nulls?.subarray(0, length),
      overrides: this.overrides,
    };
    this.capacity = capacity;
    this.reset();
    return column;
  }
}

/** text, plain-text and bytes columns: bytes into one growing buffer per batch. */
class TextWriter implements ElementWriter {
  private bytes: Buffer;
  private used = 0;
  private offsets: Int32Array;
  private nulls: Uint8Array | undefined;

  constructor(
    private readonly kind: TextColumn['kind'],
    private capacity: number,
    /**
     * How the field's bytes become the value's text: copied (from `skip` on), written as text by
     * `encode` (at most `bound` bytes), or else decoded and written.
     */
    private readonly copy: { readonly skip: number; readonly check?: (buf: Buffer, start: number) => void } | undefined,
    private readonly decode: Decoder,
    private readonly encode?: {
      readonly bound: (buf: Buffer, start: number) => number;
      readonly write: (buf: Buffer, start: number, out: Uint8Array, at: number) => number;
    },
  ) {
    this.bytes = Buffer.allocUnsafe(64 * 1024);
    this.offsets = new Int32Array(capacity + 1);
  }

  private reserve(n: number): void {
    if (this.used + n <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + n));
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }

  write(row: number, buf: Buffer, start: number, end: number): void {
    if (this.copy) {
      this.copy.check?.(buf, start);
      const from = start + this.copy.skip;
      const n = end - from;
      this.reserve(n);
      // Most fields are short: a loop costs less than a native copy call.
      if (n <= 64) {
        const bytes = this.bytes;
        let at = this.used;
        for (let i = from; i < end; i++) bytes[at++] = buf[i]!;
      } else buf.copy(this.bytes, this.used, from, end);
      this.used += n;
    } else if (this.encode) {
      this.reserve(this.encode.bound(buf, start));
      this.used = this.encode.write(buf, start, this.bytes, this.used);
    } else {
      const text = this.decode(buf, start, end) as string;
      this.reserve(Buffer.byteLength(text));
      this.used += this.bytes.write(text, this.used);
    }
    this.offsets[row + 1] = this.used;
  }

  store(row: number, buf: Buffer, start: number, end: number): boolean {
    this.write(row, buf, start, end);
    return true;
  }

  truncate(length: number): void {
    this.used = this.offsets[length]!;
    this.nulls?.fill(0, length);
  }

  writeNull(row: number): void {
    (this.nulls ??= new Uint8Array(this.capacity))[row] = 1;
    this.offsets[row + 1] = this.used;
  }

  grow(capacity: number): void {
    this.offsets = grown(this.offsets, capacity + 1);
    if (this.nulls) this.nulls = grown(this.nulls, capacity);
    this.capacity = capacity;
  }

  take(length: number, capacity: number): TextColumn {
    // A plain Uint8Array: the store takes a view per value, and Buffer's subarray costs more.
    const column = {
      kind: this.kind,
      bytes: new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.used),
      offsets: this.offsets.subarray(0, length + 1),
      nulls: this.nulls?.subarray(0, length),
    };
    // Room for about as many bytes as this batch took (small batches stay small).
    this.bytes = Buffer.allocUnsafe(
      Math.min(Math.max(1024, this.used + (this.used >> 2)), Math.max(64 * 1024, this.bytes.length)),
    );
    this.used = 0;
    this.capacity = capacity;
    this.offsets = new Int32Array(capacity + 1);
    this.nulls = undefined;
    return column;
  }
}

/** Any other type: the JSON text of its decoded Value. */
class ValueWriter implements ColumnWriter {
  private values: (string | null)[] = [];
  constructor(private readonly decode: Decoder) {}

  write(row: number, buf: Buffer, start: number, end: number): void {
    this.values[row] = encodeValue(this.decode(buf, start, end));
  }

  writeNull(row: number): void {
    this.values[row] = null;
  }

  grow(): void {}

  take(length: number): RowColumn {
    const values = this.values;
    values.length = length;
    this.values = [];
    return { kind: 'value', values };
  }
}

/** Elements a list column's buffers start with per row of the batch. */
const ELEMENTS_PER_ROW = 4;

/**
 * One-dimensional arrays (array_send: int32 ndim, int32 has-nulls flag, uint32 element type OID,
 * ndim × (int32 size, int32 lower bound), then each element as int32 length, -1 for NULL, and its
 * bytes): the elements go to an element writer, one element row each. Lower bounds are dropped, as
 * the Value form drops them. An array of more dimensions, or holding an element the element writer
 * cannot hold, is an override (its decoded Value's JSON), with no elements.
 */
class ListWriter implements ColumnWriter {
  private offsets: Int32Array;
  private nulls: Uint8Array | undefined;
  private overrides: Map<number, string> | undefined;
  /** Elements written in this batch. */
  private count = 0;
  /** Elements the element writer has room for. */
  private room: number;

  constructor(
    private capacity: number,
    private readonly element: ElementWriter,
    /** The whole array's Value decoder, for overrides. */
    private readonly decode: Decoder,
    room: number,
  ) {
    this.offsets = new Int32Array(capacity + 1);
    this.room = room;
  }

  write(row: number, buf: Buffer, start: number, end: number): void {
    const ndim = int32At(buf, start);
    if (ndim === 1) {
      const n = int32At(buf, start + 12);
      if (this.count + n > this.room) {
        this.room = Math.max(this.room * 2, this.count + n);
        this.element.grow(this.room);
      }
      const first = this.count;
      let p = start + 20;
      for (let k = 0; k < n; k++) {
        const len = int32At(buf, p);
        p += 4;
        if (len < 0) this.element.writeNull(this.count++);
        else if (p + len > end || !this.element.store(this.count++, buf, p, p + len)) {
          this.count = first;
          this.element.truncate(first);
          this.override(row, buf, start, end);
          return;
        } else p += len;
      }
    } else if (ndim !== 0) {
      this.override(row, buf, start, end);
      return;
    }
    this.offsets[row + 1] = this.count;
  }

  private override(row: number, buf: Buffer, start: number, end: number): void {
    (this.overrides ??= new Map()).set(row, encodeValue(this.decode(buf, start, end)));
    this.offsets[row + 1] = this.count;
  }

  writeNull(row: number): void {
    (this.nulls ??= new Uint8Array(this.capacity))[row] = 1;
    this.offsets[row + 1] = this.count;
  }

  grow(capacity: number): void {
    this.offsets = grown(this.offsets, capacity + 1);
    if (this.nulls) this.nulls = grown(this.nulls, capacity);
    this.capacity = capacity;
  }

  take(length: number, capacity: number): RowColumn {
    // The next batch starts with room for about as many elements per row as this one took.
    const room = Math.max(capacity * ELEMENTS_PER_ROW, Math.ceil((this.count / Math.max(1, length)) * capacity));
    const column: RowColumn = {
      kind: 'list',
      elements: this.element.take(this.count, room),
      offsets: this.offsets.subarray(0, length + 1),
      nulls: this.nulls?.subarray(0, length),
      overrides: this.overrides,
    };
    this.room = room;
    this.count = 0;
    this.capacity = capacity;
    this.offsets = new Int32Array(capacity + 1);
    this.nulls = undefined;
    this.overrides = undefined;
    return column;
  }
}

/** A copy of `array` with room for `length` elements. */
function grown<T extends Uint8Array | Int32Array>(array: T, length: number): T {
  const out = new (array.constructor as new (n: number) => T)(length);
  out.set(array);
  return out;
}

function checkJsonbVersion(buf: Buffer, start: number): void {
  if (buf[start] !== 1) throw new Error(`unsupported jsonb binary format version ${buf[start]} (expected 1)`);
}

/** The writer of a column whose layout is not `list` or `value`. */
function scalarWriter(
  column: ColumnSchema,
  kind: ColumnKind,
  capacity: number,
  utf8Server: boolean,
  decode: Decoder,
): ElementWriter {
  switch (kind) {
    case 'text':
    case 'json':
      // A server encoding other than UTF-8 sends text in that encoding: decode as the stream does.
      if (!utf8Server) return new TextWriter(kind, capacity, undefined, decode);
      return new TextWriter(
        kind,
        capacity,
        column.type === 'jsonb' ? { skip: 1, check: checkJsonbVersion } : { skip: 0 },
        decode,
      );
    case 'plain-text':
      return new TextWriter(
        kind,
        capacity,
        undefined,
        decode,
        column.type === 'numeric' ? { bound: numericTextBound, write: writeNumericText } : undefined,
      );
    case 'bytes':
      return new TextWriter(kind, capacity, { skip: 0 }, decode);
    default:
      return new FixedWriter(kind as FixedColumn['kind'], capacity, decode);
  }
}

function writerFor(column: ColumnSchema, capacity: number, utf8Server: boolean): ColumnWriter {
  const kind: ColumnKind = columnKind(column);
  const decode = decoderFor(column.type, column.array);
  if (kind === 'value') return new ValueWriter(decode);
  if (kind !== 'list') return scalarWriter(column, kind, capacity, utf8Server, decode);
  const element = { ...column, array: false, key: false };
  const room = capacity * ELEMENTS_PER_ROW;
  return new ListWriter(
    capacity,
    scalarWriter(element, columnKind(element), room, utf8Server, decoderFor(column.type, false)),
    decode,
    room,
  );
}

/**
 * A {@link CopyRowSink} building column-wise rows of one table schema: `onFull` is called when
 * `capacity` rows are built, or rows of `maxBytes` (their fields' size on the wire), and must
 * {@link take} them (which starts anew). With `initialCapacity`, buffers start that small and double
 * as rows come (the stream's batches are often a row or two).
 */
export class SnapshotColumnsBuilder implements CopyRowSink {
  private readonly writers: ColumnWriter[];
  private row = 0;
  private room: number;
  /** The size on the wire of the fields built since the last {@link take}. */
  private bytes = 0;

  constructor(
    columns: readonly ColumnSchema[],
    private readonly capacity: number,
    private readonly options: {
      readonly utf8Server: boolean;
      readonly onFull?: () => void;
      readonly maxBytes?: number;
      readonly initialCapacity?: number;
    },
  ) {
    this.room = Math.min(capacity, options.initialCapacity ?? capacity);
    this.writers = columns.map((c) => writerFor(c, this.room, options.utf8Server));
  }

  /** Rows built since the last {@link take}. */
  get length(): number {
    return this.row;
  }

  field(column: number, buf: Buffer, start: number, end: number): void {
    this.bytes += end - start;
    this.writers[column]!.write(this.row, buf, start, end);
  }

  nullField(column: number): void {
    this.writers[column]!.writeNull(this.row);
  }

  endRow(): void {
    const { onFull, maxBytes } = this.options;
    this.row++;
    if (onFull && maxBytes !== undefined && this.bytes >= maxBytes) return onFull();
    if (this.row < this.room) return;
    if (this.row >= this.capacity && onFull) onFull();
    else {
      // Without onFull, `capacity` only bounds the first allocations.
      this.room = this.row >= this.capacity ? this.room * 2 : Math.min(this.capacity, this.room * 2);
      for (const w of this.writers) w.grow(this.room);
    }
  }

  take(): ColumnRows {
    const length = this.row;
    this.row = 0;
    this.bytes = 0;
    // The next batch starts with room for about as many rows as this one.
    const initial = this.options.initialCapacity;
    if (initial !== undefined)
      this.room = Math.min(this.capacity, Math.max(initial, 2 ** Math.ceil(Math.log2(Math.max(1, length)))));
    return { length, columns: this.writers.map((w) => w.take(length, this.room)) };
  }
}
