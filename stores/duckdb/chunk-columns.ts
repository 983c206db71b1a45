/**
 * Filling DuckDB data chunks column-wise for the appender. Fixed-width columns (and the elements of
 * fixed-size arrays) are copied into the vector's buffer in one call through the DuckDB C API
 * (`@duckdb/node-bindings`, which `@duckdb/node-api` is built on and pins), with a validity mask in
 * DuckDB's layout; strings go through the node API. Per-value writes would cost more than the rest
 * of applying a change.
 */
import duckdb from '@duckdb/node-bindings';
import { DuckDBDataChunk, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';

/** One column of a chunk: a typed array (fixed width), values (strings), or a fixed-size array's elements. */
export type ChunkColumn =
  | { readonly kind: 'fixed'; readonly data: ArrayBufferView; readonly validity?: Uint8Array }
  | { readonly kind: 'values'; readonly values: DuckDBValue[] }
  | { readonly kind: 'array'; readonly elements: ArrayBufferView; readonly validity?: Uint8Array };

/** A validity mask in DuckDB's layout (64-bit words, LSB first, 1 = valid), made on the first null. */
export class ValidityMask {
  bytes: Uint8Array | undefined;
  constructor(private readonly length: number) {}
  setNull(i: number): void {
    this.bytes ??= new Uint8Array(Math.ceil(this.length / 64) * 8).fill(0xff);
    this.bytes[i >> 3]! &= ~(1 << (i & 7));
  }
}

function copyInto(vector: duckdb.Vector, data: ArrayBufferView, validity: Uint8Array | undefined): void {
  duckdb.copy_data_to_vector(vector, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (validity) {
    duckdb.vector_ensure_validity_writable(vector);
    duckdb.copy_data_to_vector_validity(
      vector,
      0,
      validity.buffer as ArrayBuffer,
      validity.byteOffset,
      validity.byteLength,
    );
  }
}

/** A chunk of `types` holding `length` rows of `columns`. */
export function makeChunk(
  types: readonly DuckDBType[],
  length: number,
  columns: readonly ChunkColumn[],
): DuckDBDataChunk {
  return fillChunk(DuckDBDataChunk.create(types, length), length, columns);
}

/**
 * `chunk` (of the columns' types) emptied and holding `length` rows of `columns`. A chunk reused
 * rather than made anew: its native buffers (6 MB for 2048 rows of a 784-float tensor) are freed only
 * when the garbage collector finalizes it, which the JavaScript heap's small share gives it little
 * reason to do soon.
 */
export function fillChunk(chunk: DuckDBDataChunk, length: number, columns: readonly ChunkColumn[]): DuckDBDataChunk {
  chunk.reset();
  chunk.rowCount = length;
  columns.forEach((column, i) => {
    if (column.kind === 'values') {
      chunk.setColumnValues(i, column.values);
      return;
    }
    const vector = duckdb.data_chunk_get_vector(chunk.chunk, i);
    if (column.kind === 'fixed') copyInto(vector, column.data, column.validity);
    else {
      copyInto(duckdb.array_vector_get_child(vector), column.elements, undefined);
      if (column.validity) {
        duckdb.vector_ensure_validity_writable(vector);
        duckdb.copy_data_to_vector_validity(
          vector,
          0,
          column.validity.buffer as ArrayBuffer,
          column.validity.byteOffset,
          column.validity.byteLength,
        );
      }
    }
  });
  return chunk;
}
