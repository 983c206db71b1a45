/**
 * DuckDB query results → Apache Arrow, column-wise. Fixed-width columns (integers, floats, dates,
 * timestamps), booleans, strings, fixed-size arrays and lists are read straight from each chunk's
 * vector buffers through the DuckDB C API (`@duckdb/node-bindings`, the layer `@duckdb/node-api` is
 * built on and pins): DuckDB's validity mask has Arrow's bitmap layout (LSB first, 1 = valid) and a
 * fixed-width vector is Arrow's value buffer, so those are copies, not per-value conversions. Other
 * types go through the node API's values.
 */
import duckdb from '@duckdb/node-bindings';
import {
  type DuckDBArrayType,
  type DuckDBListType,
  DuckDBTypeId,
  DuckDBVector,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';

/** Converts `length` rows of a raw DuckDB vector to Arrow data of a fixed type. */
interface ColumnConverter {
  readonly type: arrow.DataType;
  convert(vector: duckdb.Vector, length: number): arrow.Data;
}

interface Validity {
  readonly bitmap: Uint8Array | undefined;
  readonly nulls: number;
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let b = i; b; b >>= 1) n += b & 1;
  return n;
});

/** The vector's validity as an Arrow bitmap (a copy), or none when every row is valid. */
function validityOf(vector: duckdb.Vector, length: number): Validity {
  const words = Math.ceil(length / 64);
  const mask = words === 0 ? null : duckdb.vector_get_validity(vector, words * 8);
  if (!mask) return { bitmap: undefined, nulls: 0 };
  const bytes = (length + 7) >> 3;
  const bitmap = mask.slice(0, bytes);
  if (length & 7) bitmap[bytes - 1]! &= (1 << (length & 7)) - 1;
  let valid = 0;
  for (let i = 0; i < bytes; i++) valid += POPCOUNT[bitmap[i]!]!;
  return valid === length ? { bitmap: undefined, nulls: 0 } : { bitmap, nulls: length - valid };
}

type TypedArrayClass = {
  new (buffer: ArrayBuffer, offset?: number, length?: number): ArrayBufferView;
  BYTES_PER_ELEMENT: number;
};

/** A fixed-width column: the vector's value buffer is the Arrow buffer. */
function fixedWidth(type: arrow.DataType, Array_: TypedArrayClass): ColumnConverter {
  return {
    type,
    convert(vector, length) {
      const bytes = duckdb.vector_get_data(vector, length * Array_.BYTES_PER_ELEMENT).slice();
      const { bitmap, nulls } = validityOf(vector, length);
      const data = new Array_(bytes.buffer, bytes.byteOffset, length);
      return arrow.makeData({
        type: type as arrow.Int32,
        length,
        nullCount: nulls,
        nullBitmap: bitmap,
        data: data as Int32Array,
      });
    },
  };
}

/** DuckDB keeps one byte per boolean; Arrow one bit. */
const bool: ColumnConverter = {
  type: new arrow.Bool(),
  convert(vector, length) {
    const bytes = duckdb.vector_get_data(vector, length);
    const out = new Uint8Array((length + 7) >> 3);
    for (let i = 0; i < length; i++) if (bytes[i]) out[i >> 3]! |= 1 << (i & 7);
    const { bitmap, nulls } = validityOf(vector, length);
    return arrow.makeData({ type: new arrow.Bool(), length, nullCount: nulls, nullBitmap: bitmap, data: out });
  },
};

/**
 * Strings: each `duckdb_string_t` is 16 bytes, the length first, then the bytes inline when they fit
 * in 12, else a 4-byte prefix and a pointer. The UTF-8 bytes are copied as they are (no decoding).
 * Out-of-line strings of consecutive rows usually lie back to back in DuckDB's string heap; such a
 * run is fetched with one call (reading only bytes that belong to its strings), not one per string.
 */
const utf8: ColumnConverter = {
  type: new arrow.Utf8(),
  convert(vector, length) {
    const structs = duckdb.vector_get_data(vector, length * 16);
    const view = new DataView(structs.buffer, structs.byteOffset, structs.byteLength);
    const { bitmap, nulls } = validityOf(vector, length);
    const offsets = new Int32Array(length + 1);
    // Pass 1: offsets, and runs of adjacent out-of-line strings (first row, byte length).
    const runStart: number[] = [];
    const runBytes: number[] = [];
    let at = 0;
    let heapEnd = -1;
    for (let i = 0; i < length; i++) {
      if (!bitmap || bitmap[i >> 3]! & (1 << (i & 7))) {
        const n = view.getUint32(i * 16, true);
        if (n > 12) {
          // User-space addresses fit in 2^53: a Number holds them exactly.
          const pointer = view.getUint32(i * 16 + 12, true) * 2 ** 32 + view.getUint32(i * 16 + 8, true);
          if (pointer === heapEnd) runBytes[runBytes.length - 1]! += n;
          else {
            runStart.push(i);
            runBytes.push(n);
          }
          heapEnd = pointer + n;
        } else heapEnd = -1;
        at += n;
      } else heapEnd = -1;
      offsets[i + 1] = at;
    }
    // Pass 2: inline bytes from the structs, runs from the heap.
    const data = new Uint8Array(at);
    for (let i = 0; i < length; i++) {
      const n = offsets[i + 1]! - offsets[i]!;
      if (n > 0 && n <= 12) data.set(structs.subarray(i * 16 + 4, i * 16 + 4 + n), offsets[i]!);
    }
    for (let r = 0; r < runStart.length; r++) {
      const i = runStart[r]!;
      data.set(
        duckdb.get_data_from_pointer(structs.buffer as ArrayBuffer, structs.byteOffset + i * 16 + 8, runBytes[r]!),
        offsets[i]!,
      );
    }
    return arrow.makeData({
      type: new arrow.Utf8(),
      length,
      nullCount: nulls,
      nullBitmap: bitmap,
      valueOffsets: offsets,
      data,
    });
  },
};

/** Fixed-size arrays (tensors): the child vector holds `size` elements per row. */
function fixedSizeList(type: arrow.FixedSizeList, child: ColumnConverter, size: number): ColumnConverter {
  return {
    type,
    convert(vector, length) {
      const { bitmap, nulls } = validityOf(vector, length);
      const childData = child.convert(duckdb.array_vector_get_child(vector), length * size);
      return arrow.makeData({ type, length, nullCount: nulls, nullBitmap: bitmap, child: childData });
    },
  };
}

/** Lists: 16-byte (offset, length) entries into the child vector. */
function list(type: arrow.List, child: ColumnConverter, duckType: DuckDBType): ColumnConverter {
  return {
    type,
    convert(vector, length) {
      const entries = duckdb.vector_get_data(vector, length * 16);
      const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
      const { bitmap, nulls } = validityOf(vector, length);
      const childVector = duckdb.list_vector_get_child(vector);
      const childData = child.convert(childVector, duckdb.list_vector_get_size(vector));
      const offsets = new Int32Array(length + 1);
      // Arrow wants the child in row order; DuckDB lists are written in row order too, so a row's
      // elements start where the previous row's end (empty or null rows take none).
      for (let i = 0; i < length; i++) {
        const valid = !bitmap || bitmap[i >> 3]! & (1 << (i & 7));
        const start = Number(view.getBigUint64(i * 16, true));
        const n = valid ? Number(view.getBigUint64(i * 16 + 8, true)) : 0;
        if (valid && start !== offsets[i]) return listValues(type, duckType).convert(vector, length);
        offsets[i + 1] = offsets[i]! + n;
      }
      return arrow.makeData({
        type,
        length,
        nullCount: nulls,
        nullBitmap: bitmap,
        valueOffsets: offsets,
        child: childData,
      });
    },
  };
}

/** Lists whose elements are not stored in row order: the node API's values, row by row. */
function listValues(type: arrow.List, duckType: DuckDBType): ColumnConverter {
  return {
    type,
    convert(vector, length) {
      const values = DuckDBVector.create(vector, length, duckType);
      const rows: (DuckDBValue[] | null)[] = [];
      for (let i = 0; i < length; i++) {
        const v = values.getItem(i) as { items: DuckDBValue[] } | null;
        rows.push(v === null ? null : [...v.items]);
      }
      return arrow.vectorFromArray(rows as never, type).data[0]!;
    },
  };
}

/** Any other type: the node API's value per row, as text. */
function generic(type: arrow.DataType, duckType?: DuckDBType): ColumnConverter {
  return {
    type,
    convert(vector, length) {
      const values = DuckDBVector.create(vector, length, duckType);
      const strings: (string | null)[] = [];
      for (let i = 0; i < length; i++) {
        const v = values.getItem(i) as DuckDBValue;
        strings.push(v === null ? null : String(v));
      }
      return arrow.vectorFromArray(strings, new arrow.Utf8()).data[0]!;
    },
  };
}

/** The converter of a DuckDB column type; types without an Arrow counterpart here become text. */
export function converterFor(type: DuckDBType): ColumnConverter {
  switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN:
      return bool;
    case DuckDBTypeId.TINYINT:
      return fixedWidth(new arrow.Int8(), Int8Array);
    case DuckDBTypeId.SMALLINT:
      return fixedWidth(new arrow.Int16(), Int16Array);
    case DuckDBTypeId.INTEGER:
      return fixedWidth(new arrow.Int32(), Int32Array);
    case DuckDBTypeId.BIGINT:
      return fixedWidth(new arrow.Int64(), BigInt64Array);
    case DuckDBTypeId.UTINYINT:
      return fixedWidth(new arrow.Uint8(), Uint8Array);
    case DuckDBTypeId.USMALLINT:
      return fixedWidth(new arrow.Uint16(), Uint16Array);
    case DuckDBTypeId.UINTEGER:
      return fixedWidth(new arrow.Uint32(), Uint32Array);
    case DuckDBTypeId.UBIGINT:
      return fixedWidth(new arrow.Uint64(), BigUint64Array);
    case DuckDBTypeId.FLOAT:
      return fixedWidth(new arrow.Float32(), Float32Array);
    case DuckDBTypeId.DOUBLE:
      return fixedWidth(new arrow.Float64(), Float64Array);
    case DuckDBTypeId.DATE:
      return fixedWidth(new arrow.DateDay(), Int32Array);
    // Both hold microseconds since the epoch; TIMESTAMPTZ is an instant (UTC).
    case DuckDBTypeId.TIMESTAMP_TZ:
      return fixedWidth(new arrow.TimestampMicrosecond('UTC'), BigInt64Array);
    case DuckDBTypeId.TIMESTAMP:
      return fixedWidth(new arrow.TimestampMicrosecond(), BigInt64Array);
    case DuckDBTypeId.VARCHAR:
      return utf8;
    case DuckDBTypeId.ARRAY: {
      const t = type as DuckDBArrayType;
      const child = converterFor(t.valueType);
      return fixedSizeList(
        new arrow.FixedSizeList(t.length, new arrow.Field('item', child.type, true)),
        child,
        t.length,
      );
    }
    case DuckDBTypeId.LIST: {
      const t = type as DuckDBListType;
      const child = converterFor(t.valueType);
      return list(new arrow.List(new arrow.Field('item', child.type, true)), child, type);
    }
    default:
      return generic(new arrow.Utf8(), type);
  }
}

/** Options of {@link queryArrow} and {@link streamArrow}. */
export interface QueryArrowOptions {
  /** Metadata per column name, kept on the Arrow fields (e.g. a tensor's shape). */
  readonly fieldMetadata?: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Called after each chunk with the rows converted so far. */
  readonly onRows?: (rows: number) => void;
  /** Rows the query must return: fewer fail the read (see {@link streamArrow}). */
  readonly expectedRows?: number;
}

/** A query's result as Arrow: its schema, then one record batch per DuckDB chunk as DuckDB makes them. */
export interface ArrowStream {
  readonly schema: arrow.Schema;
  /** Iterate once; breaking off releases the result. */
  readonly batches: AsyncIterable<arrow.RecordBatch>;
}

/**
 * Runs a query and streams its result as Arrow record batches, converted column-wise chunk by chunk
 * (never through row objects), so a caller can write them out without holding the whole result.
 *
 * A DuckDB streaming result that fails midway (out of memory) ends as if it were complete, and the node
 * API cannot tell: with `expectedRows`, a result that ends short fails with FF_EXPORT instead of
 * passing for a smaller one.
 */
export async function streamArrow(
  c: DuckDBConnection,
  sql: string,
  params: DuckDBValue[] = [],
  options: QueryArrowOptions = {},
): Promise<ArrowStream> {
  const result = await c.stream(sql, params);
  const names = result.deduplicatedColumnNames();
  const converters = result.columnTypes().map(converterFor);
  const fields = names.map(
    (name, i) =>
      new arrow.Field(
        name,
        converters[i]!.type,
        true,
        options.fieldMetadata?.get(name) as Map<string, string> | undefined,
      ),
  );
  const schema = new arrow.Schema(fields);
  const struct = new arrow.Struct(fields);
  async function* batches(): AsyncGenerator<arrow.RecordBatch> {
    let rows = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const length = chunk.rowCount;
      const children = converters.map((conv, i) => conv.convert(duckdb.data_chunk_get_vector(chunk.chunk, i), length));
      rows += length;
      options.onRows?.(rows);
      yield new arrow.RecordBatch(schema, arrow.makeData({ type: struct, length, nullCount: 0, children }));
    }
    if (options.expectedRows !== undefined && rows !== options.expectedRows) {
      throw new FeatureflowError(
        'FF_EXPORT',
        `a read of the store ended after ${rows} of its ${options.expectedRows} rows: DuckDB failed midway, most likely out of memory; ` +
          'raise the memory limit of the process reading (duckdb({ memoryLimit }), openOfflineStore(path, { memoryLimit }))',
      );
    }
  }
  return { schema, batches: batches() };
}

/**
 * Runs a query and returns its result as an Arrow table, converted column-wise chunk by chunk (one
 * record batch per DuckDB chunk), never through row objects.
 */
export async function queryArrow(
  c: DuckDBConnection,
  sql: string,
  params: DuckDBValue[] = [],
  options: QueryArrowOptions = {},
): Promise<arrow.Table> {
  const { schema, batches } = await streamArrow(c, sql, params, options);
  const out: arrow.RecordBatch[] = [];
  for await (const batch of batches) out.push(batch);
  return new arrow.Table(schema, out);
}

/** The parts of a writer that {@link IpcEncoder} reaches: apache-arrow's writers send every byte through `_write`. */
type WriterClass = new () => arrow.RecordBatchWriter;

/** A writer of apache-arrow's whose bytes are taken as they are made instead of queued. */
function capturing(Base: WriterClass) {
  return class extends Base {
    parts: Uint8Array[] = [];
    protected override _write(chunk: unknown): this {
      // apache-arrow writes typed arrays only (schema, padding, bodies, footer).
      if (!ArrayBuffer.isView(chunk)) throw new TypeError('an Arrow IPC writer wrote something other than bytes');
      if (this._started && chunk.byteLength > 0) {
        this.parts.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        this._position += chunk.byteLength;
      }
      return this;
    }
  };
}

const CapturingFileWriter = capturing(arrow.RecordBatchFileWriter);
const CapturingStreamWriter = capturing(arrow.RecordBatchStreamWriter);

/**
 * Encodes record batches in Arrow IPC (the file or the stream format) and hands out the bytes of each
 * step for the caller to write with backpressure: apache-arrow's own writers queue every byte until
 * it is read, without a bound. Call {@link start}, then {@link write} per batch, then {@link finish}.
 */
export class IpcEncoder {
  private readonly writer: InstanceType<typeof CapturingFileWriter>;

  constructor(
    format: 'file' | 'stream',
    private readonly schema: arrow.Schema,
  ) {
    this.writer = format === 'file' ? new CapturingFileWriter() : new CapturingStreamWriter();
  }

  /** The header (the schema; the file format's magic). */
  start(): Uint8Array[] {
    this.writer.reset(undefined, this.schema);
    return this.take();
  }

  /** One record batch. */
  write(batch: arrow.RecordBatch): Uint8Array[] {
    this.writer.write(batch);
    return this.take();
  }

  /** The end (the stream's end marker; the file format's footer). */
  finish(): Uint8Array[] {
    this.writer.finish();
    return this.take();
  }

  private take(): Uint8Array[] {
    const parts = this.writer.parts;
    this.writer.parts = [];
    return parts;
  }
}
