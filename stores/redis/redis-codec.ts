/**
 * The bytes of one entity's Redis value, as the write script stores and compares them:
 *
 * ```
 * order        32 bytes  the commit position then the change position, each 16 lower-case hex digits,
 *                        zero-padded: fixed width, so the script compares orders as strings, and
 *                        string order is commit order (Lua numbers are doubles and would round a
 *                        64-bit position)
 * commit time   8 bytes  int64 little-endian, µs since the Unix epoch
 * (a deletion's tombstone ends here: 40 bytes)
 * null bits     ⌈features/8⌉ bytes, bit f set when feature f is null
 * features      each non-null feature in the view's order, in the dtype the view declares:
 *               float32 4 bytes, float64 8, int32 4, int64 and timestamp (µs) 8 (int64 LE), bool 1,
 *               text a uint32 LE byte length then UTF-8, a tensor its elements as raw little-endian
 *               bytes (size × 4 or 8, the size fixed by the view)
 * ```
 *
 * float32 scalars come back rounded to float32, as the offline store's FLOAT column holds them. A
 * write sends its rows packed by {@link RowPacker}.
 */
import type { FeatureType } from '../../framework/features/feature-types.js';
import type { StoredFeatureValue } from '../../framework/features/feature-values.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import type { Position } from '../../framework/types.js';

/** Bytes before the null bits: a tombstone is exactly this long. */
export const ENTRY_HEADER = 40;
const POSITION_LIMIT = 1n << 64n;
// Tensors are copied as raw bytes: every platform Node ships for is little-endian; a big-endian one
// takes the element-by-element path.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type TensorArray = Float32Array | Float64Array | Int32Array;
type TensorCtor = Float32ArrayConstructor | Float64ArrayConstructor | Int32ArrayConstructor;

/** How one feature is laid out: a fixed width in bytes, or text (`width` -1). */
interface Field {
  readonly name: string;
  readonly type: FeatureType;
  readonly width: number;
  readonly tensor?: TensorCtor;
}

function field(name: string, type: FeatureType): Field {
  if (type.kind === 'tensor') {
    const tensor = type.dtype === 'float32' ? Float32Array : type.dtype === 'float64' ? Float64Array : Int32Array;
    return { name, type, width: type.size * tensor.BYTES_PER_ELEMENT, tensor };
  }
  const width = { float32: 4, float64: 8, int32: 4, int64: 8, timestamp: 8, bool: 1, text: -1 }[type.dtype];
  return { name, type, width };
}

/** A position as the 16 hex digits the scripts compare. */
export function positionHex(position: Position): string {
  if (typeof position !== 'bigint' || position < 0n || position >= POSITION_LIMIT) {
    throw new TypeError(`a position must be an unsigned 64-bit bigint, got ${String(position)}`);
  }
  return position.toString(16).padStart(16, '0');
}

/** One entity's stored value, decoded. */
export interface DecodedEntry {
  readonly position: Position;
  readonly commitTime: bigint;
  /** The features in the view's order; null for a deletion's tombstone. */
  readonly values: StoredFeatureValue[] | null;
}

/** Encodes and decodes the values of one view version. */
export class EntryCodec {
  private readonly fields: readonly Field[];
  private readonly nullBytes: number;
  /** Bytes of an entry with every feature present, its texts' bytes aside. */
  private readonly fixedBytes: number;
  private readonly hasText: boolean;
  private lastPosition: Position = -1n;
  private lastHex = '';

  constructor(private readonly view: FeatureView) {
    this.fields = Object.entries(view.features).map(([name, type]) => field(name, type));
    this.nullBytes = Math.ceil(this.fields.length / 8);
    this.fixedBytes = ENTRY_HEADER + this.nullBytes + this.fields.reduce((n, f) => n + (f.width < 0 ? 4 : f.width), 0);
    this.hasText = this.fields.some((f) => f.width < 0);
  }

  /** At most how many bytes the entry of a row takes (a tombstone's when `values` is null). */
  size(values: readonly StoredFeatureValue[] | null): number {
    if (values === null) return ENTRY_HEADER;
    let size = this.fixedBytes;
    if (this.hasText) {
      for (let f = 0; f < this.fields.length; f++)
        if (this.fields[f]!.width < 0 && values[f] !== null) size += Buffer.byteLength(values[f] as string);
    }
    return size;
  }

  /**
   * Writes the entry of a row at `at` of `out` (room for {@link size} bytes), a tombstone when
   * `values` is null; returns where it ends.
   */
  write(
    out: Buffer,
    at: number,
    commitPosition: Position,
    position: Position,
    commitTime: bigint,
    values: readonly StoredFeatureValue[] | null,
  ): number {
    // A load writes every row at one commit position, a transaction many changes at one: format each once.
    if (commitPosition !== this.lastPosition) {
      this.lastHex = positionHex(commitPosition);
      this.lastPosition = commitPosition;
    }
    out.write(this.lastHex, at, 16, 'latin1');
    out.write(positionHex(position), at + 16, 16, 'latin1');
    out.writeBigInt64LE(commitTime, at + 32);
    if (values === null) return at + ENTRY_HEADER;
    const fields = this.fields;
    if (values.length !== fields.length) {
      throw new TypeError(
        `feature view ${this.view.name}@${this.view.version} has ${fields.length} features, a row gave ${values.length} values`,
      );
    }
    const nulls = at + ENTRY_HEADER;
    out.fill(0, nulls, nulls + this.nullBytes);
    at = nulls + this.nullBytes;
    for (let f = 0; f < fields.length; f++) {
      const value = values[f]!;
      const { type, tensor, width } = fields[f]!;
      if (value === null) {
        out[nulls + (f >> 3)]! |= 1 << (f & 7);
        continue;
      }
      if (tensor) {
        at = this.writeTensor(out, at, fields[f]!, value as TensorArray);
        continue;
      }
      switch (type.dtype) {
        case 'float32':
          out.writeFloatLE(value as number, at);
          break;
        case 'float64':
          out.writeDoubleLE(value as number, at);
          break;
        case 'int32':
          out.writeInt32LE(value as number, at);
          break;
        case 'int64':
        case 'timestamp':
          out.writeBigInt64LE(value as bigint, at);
          break;
        case 'bool':
          out[at] = value ? 1 : 0;
          break;
        case 'text': {
          const written = out.write(value as string, at + 4, 'utf8');
          out.writeUInt32LE(written, at);
          at += 4 + written;
          continue;
        }
      }
      at += width;
    }
    return at;
  }

  /** Decodes a stored entry. */
  decode(entry: Buffer): DecodedEntry {
    const position = BigInt('0x' + entry.toString('latin1', 16, 32));
    const commitTime = entry.readBigInt64LE(32);
    if (entry.length <= ENTRY_HEADER) return { position, commitTime, values: null };
    const fields = this.fields;
    const values = new Array<StoredFeatureValue>(fields.length);
    let at = ENTRY_HEADER + this.nullBytes;
    for (let f = 0; f < fields.length; f++) {
      const { type, tensor, width } = fields[f]!;
      if (entry[ENTRY_HEADER + (f >> 3)]! & (1 << (f & 7))) {
        values[f] = null;
        continue;
      }
      if (tensor) {
        const out = new tensor(width / tensor.BYTES_PER_ELEMENT);
        if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(entry.subarray(at, at + width));
        else
          for (let i = 0; i < out.length; i++) out[i] = readElement(entry, at + i * tensor.BYTES_PER_ELEMENT, tensor);
        values[f] = out;
        at += width;
        continue;
      }
      switch (type.dtype) {
        case 'float32':
          values[f] = entry.readFloatLE(at);
          break;
        case 'float64':
          values[f] = entry.readDoubleLE(at);
          break;
        case 'int32':
          values[f] = entry.readInt32LE(at);
          break;
        case 'int64':
        case 'timestamp':
          values[f] = entry.readBigInt64LE(at);
          break;
        case 'bool':
          values[f] = entry[at] === 1;
          break;
        case 'text': {
          const length = entry.readUInt32LE(at);
          values[f] = entry.toString('utf8', at + 4, at + 4 + length);
          at += 4 + length;
          continue;
        }
      }
      at += width;
    }
    return { position, commitTime, values };
  }

  private writeTensor(out: Buffer, at: number, field: Field, value: TensorArray): number {
    const ctor = field.tensor!;
    const elements = field.width / ctor.BYTES_PER_ELEMENT;
    if (value.length !== elements) {
      throw new TypeError(
        `feature ${field.name} of ${this.view.name}@${this.view.version} takes ${elements} elements, got ${value.length}`,
      );
    }
    // A typed array of another dtype than declared is converted, as the offline column would.
    const items = value instanceof ctor ? value : ctor.from(value);
    if (LITTLE_ENDIAN) out.set(new Uint8Array(items.buffer, items.byteOffset, field.width), at);
    else for (let i = 0; i < elements; i++) writeElement(out, at + i * ctor.BYTES_PER_ELEMENT, ctor, items[i]!);
    return at + field.width;
  }
}

function readElement(entry: Buffer, at: number, ctor: TensorCtor): number {
  return ctor === Float32Array
    ? entry.readFloatLE(at)
    : ctor === Float64Array
      ? entry.readDoubleLE(at)
      : entry.readInt32LE(at);
}

function writeElement(out: Buffer, at: number, ctor: TensorCtor, value: number): void {
  if (ctor === Float32Array) out.writeFloatLE(value, at);
  else if (ctor === Float64Array) out.writeDoubleLE(value, at);
  else out.writeInt32LE(value, at);
}

/**
 * The rows of one script call as one MessagePack array of strings `[entityId, entry, …]`, which the
 * script unpacks with Redis's built-in cmsgpack (in C): one argument per call instead of two per row,
 * written straight into one buffer (measured: a third of the client's time and most of its garbage,
 * against a Buffer and two RESP arguments per row). A truncate is the pair `['', position]`.
 */
export class RowPacker {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private at = 5;
  private items = 0;

  constructor(private readonly codec: EntryCodec) {}

  /** Rows packed since the last {@link take}. */
  get rows(): number {
    return this.items / 2;
  }

  /** Adds a row of values, or a deletion's tombstone when `values` is null. */
  add(
    id: string,
    commitPosition: Position,
    position: Position,
    commitTime: bigint,
    values: readonly StoredFeatureValue[] | null,
  ): void {
    const idBytes = Buffer.byteLength(id);
    this.ensure(5 + idBytes + 5 + this.codec.size(values));
    this.string(id, idBytes);
    // The entry is written first and its str32 header (fixed width) after, so it needs no size in advance.
    const start = this.at + 5;
    const end = this.codec.write(this.buffer, start, commitPosition, position, commitTime, values);
    this.buffer[this.at] = 0xdb;
    this.buffer.writeUInt32BE(end - start, this.at + 1);
    this.at = end;
    this.items += 2;
  }

  /** Adds a truncate (its order: commit position, then change position). */
  truncate(commitPosition: Position, position: Position): void {
    this.ensure(1 + 1 + 32);
    this.string('', 0);
    this.string(positionHex(commitPosition) + positionHex(position), 32);
    this.items += 2;
  }

  /** The message (a copy) of the rows added since the last take; the packer starts over. */
  take(): Buffer {
    this.buffer[0] = 0xdd;
    this.buffer.writeUInt32BE(this.items, 1);
    const message = Buffer.from(this.buffer.subarray(0, this.at));
    this.at = 5;
    this.items = 0;
    return message;
  }

  /** Writes a string of `bytes` UTF-8 bytes: fixstr up to 31, else str16 or str32. */
  private string(text: string, bytes: number): void {
    const b = this.buffer;
    if (bytes <= 31) b[this.at++] = 0xa0 | bytes;
    else if (bytes <= 0xffff) {
      b[this.at] = 0xda;
      b.writeUInt16BE(bytes, this.at + 1);
      this.at += 3;
    } else {
      b[this.at] = 0xdb;
      b.writeUInt32BE(bytes, this.at + 1);
      this.at += 5;
    }
    if (bytes > 0) this.at += b.write(text, this.at, bytes, 'utf8');
  }

  private ensure(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.at + bytes));
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }
}
