/**
 * Reading values back out of column-wise rows ({@link ColumnRows}): the exact `Value` of a field, as
 * the source's own decoder gives it (types.ts), so that a change read from a batch's columns equals
 * the change the source decoded. Only the framework and the stores read this layout; the source only
 * writes it.
 */
import type { ColumnRows, FixedColumn, RowColumn, TextColumn } from './column-rows.js';
import type { ColumnSchema, Row, Value } from './types.js';
import { valueDecoder } from './value-json.js';

const MS_PER_DAY = 86_400_000;
const utf8 = new TextDecoder();
const PAD2: string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? '0' : '') + i);

/** `YYYY-MM-DD` of days since 1970-01-01, for the years 1000–9999 (others are overrides). */
function formatDay(days: number): string {
  const d = new Date(days * MS_PER_DAY);
  return `${d.getUTCFullYear()}-${PAD2[d.getUTCMonth() + 1]}-${PAD2[d.getUTCDate()]}`;
}

/** `YYYY-MM-DDTHH:MM:SS.ffffff` of µs since 1970-01-01 00:00, for the years 1000–9999. */
function formatMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const d = new Date(ms);
  const frac = us - Math.floor(ms / 1000) * 1_000_000;
  return (
    `${d.getUTCFullYear()}-${PAD2[d.getUTCMonth() + 1]}-${PAD2[d.getUTCDate()]}T` +
    `${PAD2[d.getUTCHours()]}:${PAD2[d.getUTCMinutes()]}:${PAD2[d.getUTCSeconds()]}.${String(frac).padStart(6, '0')}`
  );
}

/** Reads row `i` of one column as its exact Value. */
export type ColumnReader = (i: number) => Value;

function fixedReader(column: ColumnSchema, data: FixedColumn): ColumnReader {
  const view = new DataView(data.data.buffer, data.data.byteOffset, data.data.byteLength);
  const { nulls, overrides } = data;
  const decodeOverride = valueDecoder(column);
  let read: (i: number) => Value;
  switch (data.kind) {
    case 'int16':
      read = (i) => view.getInt16(i * 2, true);
      break;
    case 'int32':
      read = (i) => view.getInt32(i * 4, true);
      break;
    case 'uint32':
      read = (i) => view.getUint32(i * 4, true);
      break;
    case 'int64':
      read = (i) => view.getBigInt64(i * 8, true);
      break;
    case 'float32':
      read = (i) => view.getFloat32(i * 4, true);
      break;
    case 'float64':
      read = (i) => view.getFloat64(i * 8, true);
      break;
    case 'bool':
      read = (i) => view.getUint8(i) !== 0;
      break;
    case 'date':
      read = (i) => formatDay(view.getInt32(i * 4, true));
      break;
    case 'timestamp':
      read = (i) => formatMicros(Number(view.getBigInt64(i * 8, true)));
      break;
    case 'timestamptz':
      read = (i) => `${formatMicros(Number(view.getBigInt64(i * 8, true)))}Z`;
      break;
  }
  return (i) => {
    if (nulls?.[i]) return null;
    const override = overrides?.get(i);
    return override === undefined ? read(i) : decodeOverride(JSON.parse(override));
  };
}

function textReader(data: TextColumn): ColumnReader {
  const { bytes, offsets, nulls } = data;
  return (i) => (nulls?.[i] ? null : utf8.decode(bytes.subarray(offsets[i]!, offsets[i + 1]!)));
}

/** A reader of one column of column-wise rows. */
export function columnReader(column: ColumnSchema, data: RowColumn): ColumnReader {
  if (data.kind === 'text' || data.kind === 'plain-text') return textReader(data);
  if (data.kind === 'value') {
    const decode = valueDecoder(column);
    const { values } = data;
    return (i) => {
      const json = values[i];
      return json === null || json === undefined ? null : decode(JSON.parse(json));
    };
  }
  return fixedReader(column, data as FixedColumn);
}

/** Reads whole rows (column name → Value) of column-wise rows laid out for `columns`. */
export function rowReader(columns: readonly ColumnSchema[], rows: ColumnRows): (i: number) => Row {
  const readers = columns.map((c, k) => columnReader(c, rows.columns[k]!));
  const names = columns.map((c) => c.name);
  return (i) => {
    const row: Row = {};
    for (let k = 0; k < names.length; k++) row[names[k]!] = readers[k]!(i);
    return row;
  };
}
