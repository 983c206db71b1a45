import type { Change, Op, Row } from '../../framework/types.js';
import type { ConnectField } from './debezium-columns.js';
import { decodeValue, ValueError } from './debezium-decode.js';
import type { Shape, TableShapes } from './debezium-shapes.js';
import { parseExactJson } from './exact-json.js';

/** Debezium's stand-in for an unchanged TOASTed value it did not receive (`unavailable.value.placeholder`). */
const UNAVAILABLE = '__debezium_unavailable_value';
/** The placeholder in a bytea column: its bytes, base64 (`binary.handling.mode=bytes`). */
const UNAVAILABLE_BYTES = Buffer.from(UNAVAILABLE).toString('base64');

/** A change decoded from one record, before the source gives it its position. */
export type RecordChange = Omit<Change, 'position' | 'commitPosition'> & {
  /** `source.lsn` (or `__lsn` of a flattened record), for deduplication; null when the record lacks it. */
  readonly lsn: bigint | null;
};

/** One Kafka record as the decoder takes it. */
export interface KafkaRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The record's timestamp, ms since the epoch (Kafka's). */
  readonly timestamp: string;
  readonly headers?: Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;
}

/** A key change's headers: Debezium writes the other key's payload as JSON. */
const NEW_KEY = '__debezium.newkey';
const OLD_KEY = '__debezium.oldkey';

/** What a record's form is, per the source's settings. */
export interface RecordForm {
  readonly schemas: 'auto' | 'with' | 'without';
  readonly flattened: boolean;
}

/** Thrown for a record that cannot be read as a change; the message says what is wrong. */
export class RecordError extends Error {}

type Json = Record<string, unknown>;

/**
 * The changes of one record of `table`'s topic (none for a tombstone after a delete or a logical
 * decoding message; a key change arrives as Debezium's delete and create records). Throws a
 * {@link RecordError} for a record that is not a Debezium change.
 */
export function decodeRecord(
  table: string,
  record: KafkaRecord,
  form: RecordForm,
  shapes: TableShapes,
): RecordChange[] {
  const key = record.key === null || record.key.length === 0 ? null : unwrap(parse(record.key, 'key'), form);
  if (record.value === null || record.value.length === 0) {
    // A tombstone: after the envelope's delete, only for log compaction; a flattened delete's only record.
    if (!form.flattened || key === null) return [];
    const shape = shapes.current(table);
    if (!shape) return [];
    const row = decodeRow(shape, key.payload as Json);
    return [change(table, 'd', shape, row, null, BigInt(record.timestamp) * 1000n, 0, null)];
  }
  const value = unwrap(parse(record.value, 'value'), form);
  const keyNames = keyColumnNames(key);
  if (form.flattened) return [flattened(table, value, keyNames, record, shapes)];
  const p = value.payload as Json;
  if (typeof p !== 'object' || p === null || typeof p.op !== 'string')
    throw new RecordError(
      'the value is not a Debezium change event (no op); set flattened: true for ExtractNewRecordState records',
    );
  const op = p.op;
  const source = (p.source ?? {}) as Json;
  const time = commitMicros(source, p, record);
  const xid = Number(BigInt(asInteger(source.txId) ?? 0n) & 0xffffffffn);
  const lsn = asInteger(source.lsn);
  if (op === 'm') return [];
  if (op === 't') {
    const shape = shapes.current(table);
    return [
      {
        table,
        op: 't',
        key: null,
        before: null,
        after: null,
        commitTime: time,
        xid,
        schemaVersion: shape?.version ?? 1,
        lsn,
      },
    ];
  }
  if (!['r', 'c', 'u', 'd'].includes(op)) throw new RecordError(`unknown op ${JSON.stringify(op)}`);
  // An update of the key is Debezium's delete of the old key and create of the new one, which may
  // sit on other partitions: the create, which names the old key, is read as PostgreSQL's own update
  // that moves the row (its unchanged TOAST values are filled from the old key's row), the delete skipped.
  if (op === 'd' && header(record, NEW_KEY) !== undefined) return [];
  const oldKey = op === 'c' ? header(record, OLD_KEY) : undefined;
  const rowData = (op === 'd' ? p.before : p.after) as Json | null;
  if (typeof rowData !== 'object' || rowData === null)
    throw new RecordError(
      op === 'd'
        ? 'a delete without its before row; Debezium sends the key columns at least'
        : `op ${op} without its after row`,
    );
  let shape: Shape;
  if (value.schema) {
    const fields = ((value.schema as ConnectField).fields ?? []).find(
      (f) => f.field === (op === 'd' ? 'before' : 'after'),
    );
    if (!fields) throw new RecordError('the value schema has no before/after struct');
    const s = shapes.ofConnect(table, fields, keyNames);
    if (typeof s === 'string') throw new RecordError(s);
    shape = s;
  } else shape = shapes.ofValues(table, rowData, keyNames);
  const unchanged: string[] = [];
  const row = decodeRow(shape, rowData, op === 'u' || oldKey !== undefined ? unchanged : undefined);
  if (oldKey !== undefined) {
    const parsed = unwrap(parse(Buffer.from(oldKey), 'header __debezium.oldkey'), { ...form, schemas: 'auto' });
    const before = decodeRow(shape, parsed.payload as Json);
    const moved = change(table, 'u', shape, row, null, time, xid, lsn, unchanged);
    const oldKeyRow: Row = {};
    for (const name of shape.keyColumns) oldKeyRow[name] = before[name] ?? null;
    return [{ ...moved, before: oldKeyRow }];
  }
  return [change(table, op as Op, shape, op === 'd' ? null : row, op === 'd' ? row : null, time, xid, lsn, unchanged)];
}

function header(record: KafkaRecord, name: string): string | undefined {
  const value = record.headers?.[name];
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined ? undefined : one.toString();
}

/** A flattened record (`ExtractNewRecordState`): the row, plus `__deleted`/`__op`/`__lsn` when added. */
function flattened(
  table: string,
  value: Json,
  keyNames: readonly string[] | null,
  record: KafkaRecord,
  shapes: TableShapes,
): RecordChange {
  const payload = value.payload as Json;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new RecordError('a flattened record must be a row object');
  const row: Json = {};
  for (const [name, v] of Object.entries(payload)) if (!name.startsWith('__')) row[name] = v;
  let shape: Shape;
  if (value.schema) {
    const schema = value.schema as ConnectField;
    const s = shapes.ofConnect(
      table,
      { ...schema, fields: (schema.fields ?? []).filter((f) => !f.field?.startsWith('__')) },
      keyNames,
    );
    if (typeof s === 'string') throw new RecordError(s);
    shape = s;
  } else shape = shapes.ofValues(table, row, keyNames);
  const deleted = payload.__deleted === 'true' || payload.__deleted === true || payload.__op === 'd';
  const op: Op = deleted ? 'd' : payload.__op === 'c' || payload.__op === 'r' ? payload.__op : 'u';
  const sourceMs = asInteger(payload.__source_ts_ms) ?? asInteger(payload.__ts_ms);
  const time = sourceMs !== null ? sourceMs * 1000n : BigInt(record.timestamp) * 1000n;
  const lsn = asInteger(payload.__lsn ?? payload.__source_lsn);
  const unchanged: string[] = [];
  const decoded = decodeRow(shape, row, deleted ? undefined : unchanged);
  return change(table, op, shape, deleted ? null : decoded, deleted ? decoded : null, time, 0, lsn, unchanged);
}

function change(
  table: string,
  op: Op,
  shape: Shape,
  after: Row | null,
  before: Row | null,
  commitTime: bigint,
  xid: number,
  lsn: bigint | null,
  unchanged: string[] = [],
): RecordChange {
  const image = (after ?? before)!;
  const key: Row = {};
  for (const name of shape.keyColumns) key[name] = image[name] ?? null;
  return {
    table,
    op,
    key,
    // Deletes keep the key (what the replica identity gives by default): a FULL image's other columns are not kept.
    before: before ? key : null,
    after,
    commitTime,
    xid,
    schemaVersion: shape.version,
    lsn,
    ...(unchanged.length > 0 ? { unchangedToast: unchanged } : {}),
  };
}

/** A row's values by the shape's columns; the unchanged-TOAST placeholder becomes null, its column listed in `unchanged`. */
function decodeRow(shape: Shape, data: Json, unchanged?: string[]): Row {
  const row: Row = {};
  for (const column of shape.columns) {
    const name = column.schema.name;
    const json = data[name];
    if (unchanged && isUnavailable(json)) {
      unchanged.push(name);
      row[name] = null;
      continue;
    }
    try {
      row[name] = decodeValue(column, json);
    } catch (error) {
      if (!(error instanceof ValueError)) throw error;
      throw new RecordError(
        `column ${name} (${column.schema.type}${column.schema.array ? '[]' : ''}): ${error.message}`,
      );
    }
  }
  return row;
}

function isUnavailable(json: unknown): boolean {
  if (json === UNAVAILABLE || json === UNAVAILABLE_BYTES) return true;
  return Array.isArray(json) && json.length === 1 && isUnavailable(json[0]);
}

function parse(bytes: Buffer, what: string): unknown {
  try {
    return parseExactJson(bytes.toString('utf8'));
  } catch {
    throw new RecordError(`the ${what} is not JSON; the connector must write with JsonConverter`);
  }
}

/** `{schema, payload}` as it is, or a plain value as `{payload}`. */
function unwrap(parsed: unknown, form: RecordForm): Json {
  const enveloped =
    typeof parsed === 'object' &&
    parsed !== null &&
    'payload' in parsed &&
    'schema' in parsed &&
    Object.keys(parsed).length === 2;
  if (form.schemas === 'with' && !enveloped)
    throw new RecordError("expected {schema, payload} (schemas.enable=true); set schemas: 'without' or 'auto'");
  if (form.schemas !== 'without' && enveloped) return parsed as Json;
  return { payload: parsed };
}

function keyColumnNames(key: Json | null): string[] | null {
  if (key === null) return null;
  const schema = key.schema as ConnectField | undefined;
  if (schema?.fields) return schema.fields.map((f) => f.field ?? '');
  const payload = key.payload;
  return typeof payload === 'object' && payload !== null ? Object.keys(payload) : null;
}

function asInteger(v: unknown): bigint | null {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return null;
}

/** The commit time in µs: `source.ts_us` (Debezium 2.6+), else `source.ts_ms`, else the record's. */
function commitMicros(source: Json, payload: Json, record: KafkaRecord): bigint {
  const us = asInteger(source.ts_us);
  if (us !== null) return us;
  const ms = asInteger(source.ts_ms) ?? asInteger(payload.ts_ms);
  return (ms ?? BigInt(record.timestamp)) * 1000n;
}
