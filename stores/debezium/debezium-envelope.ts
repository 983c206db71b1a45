import type { Change, ColumnSchema, Row, VersionedSchema } from '../../framework/types.js';
import { JoinedBytes } from '../../clients/kafka/index.js';
import { columnSchema, columnValue, type ConnectSchema, type Json, toJson } from './debezium-values.js';

/** What the envelope encoder needs of the publisher's settings. */
export interface EnvelopeSettings {
  /** `topic.prefix`: topics `<prefix>.<schema>.<table>` and `<prefix>.transaction`; `source.name`. */
  readonly topicPrefix: string;
  /** JsonConverter's `schemas.enable`: each key and value as `{schema, payload}`. */
  readonly schemas: boolean;
  /** `source.db`: the captured database's name. */
  readonly database: string;
  /** A null-valued record after each delete (Debezium's `tombstones.on.delete`). */
  readonly tombstones: boolean;
  /** `source.version`. */
  readonly version: string;
}

/**
 * One Kafka record: topic, key and value as UTF-8 JSON text (null value: a tombstone), headers. A
 * change's value with its schema is its parts, written into the request as they are (see JoinedBytes).
 */
export interface DebeziumRecord {
  readonly topic: string;
  readonly key: Buffer | null;
  readonly value: Buffer | JoinedBytes | null;
  readonly headers?: Readonly<Record<string, string>>;
}

/** The `source` block's schema (io.debezium.connector.postgresql.Source), field by field as Debezium 3.x writes it. */
const SOURCE_SCHEMA: ConnectSchema = {
  type: 'struct',
  fields: [
    { type: 'string', optional: false, field: 'version' },
    { type: 'string', optional: false, field: 'connector' },
    { type: 'string', optional: false, field: 'name' },
    { type: 'int64', optional: false, field: 'ts_ms' },
    {
      type: 'string',
      optional: true,
      name: 'io.debezium.data.Enum',
      version: 1,
      parameters: { allowed: 'true,first,first_in_data_collection,last_in_data_collection,last,false,incremental' },
      default: 'false',
      field: 'snapshot',
    },
    { type: 'string', optional: false, field: 'db' },
    { type: 'string', optional: true, field: 'sequence' },
    { type: 'int64', optional: true, field: 'ts_us' },
    { type: 'int64', optional: true, field: 'ts_ns' },
    { type: 'string', optional: false, field: 'schema' },
    { type: 'string', optional: false, field: 'table' },
    { type: 'int64', optional: true, field: 'txId' },
    { type: 'int64', optional: true, field: 'lsn' },
    { type: 'int64', optional: true, field: 'xmin' },
    { type: 'string', optional: true, field: 'origin' },
    { type: 'int64', optional: true, field: 'origin_lsn' },
  ],
  optional: false,
  name: 'io.debezium.connector.postgresql.Source',
  version: 1,
  field: 'source',
};

/** The `transaction` block's schema (event.block). */
const TRANSACTION_SCHEMA: ConnectSchema = {
  type: 'struct',
  fields: [
    { type: 'string', optional: false, field: 'id' },
    { type: 'int64', optional: false, field: 'total_order' },
    { type: 'int64', optional: false, field: 'data_collection_order' },
  ],
  optional: true,
  name: 'event.block',
  version: 1,
  field: 'transaction',
};

/** The start of a JsonConverter record with this schema, `{"schema":…,"payload":`, as UTF-8. */
function schemaPrefix(schema: ConnectSchema): Buffer {
  return Buffer.from(`{"schema":${toJson(schema as unknown as Json)},"payload":`);
}

/** The transaction topic's key schema. */
const TRANSACTION_KEY_SCHEMA = schemaPrefix({
  type: 'struct',
  fields: [{ type: 'string', optional: false, field: 'id' }],
  optional: false,
  name: 'io.debezium.connector.common.TransactionMetadataKey',
  version: 1,
});
/** The transaction topic's value schema. */
const TRANSACTION_VALUE_SCHEMA = schemaPrefix({
  type: 'struct',
  fields: [
    { type: 'string', optional: false, field: 'status' },
    { type: 'string', optional: false, field: 'id' },
    { type: 'int64', optional: true, field: 'event_count' },
    {
      type: 'array',
      items: {
        type: 'struct',
        fields: [
          { type: 'string', optional: false, field: 'data_collection' },
          { type: 'int64', optional: false, field: 'event_count' },
        ],
        optional: true,
        name: 'event.collection',
        version: 1,
      },
      optional: true,
      field: 'data_collections',
    },
    { type: 'int64', optional: false, field: 'ts_ms' },
  ],
  optional: false,
  name: 'io.debezium.connector.common.TransactionMetadataValue',
  version: 1,
});

/** Per transaction, what its records count (`total_order`, `data_collection_order`, the END's counts). */
export interface TransactionCounts {
  readonly xid: number;
  /** The transaction's id as Debezium spells it: `<txId>:<LSN of its first event>`. */
  readonly id: string;
  total: number;
  readonly perTable: Map<string, number>;
  readonly commitTime: bigint;
  readonly commitPosition: bigint;
}

/** How a snapshot read is marked in `source.snapshot` (Debezium marks the first and last records). */
export type SnapshotMark = 'true' | 'first' | 'first_in_data_collection' | 'last_in_data_collection' | 'last';

/**
 * Builds Debezium PostgreSQL connector records from logged changes: the key struct, the value
 * envelope `{before, after, source, transaction, op, ts_ms, ts_us, ts_ns}`, tombstones, and the
 * transaction topic's BEGIN and END records. Keeps each table schema version's Connect schemas.
 */
export class EnvelopeEncoder {
  private readonly schemas = new Map<string, VersionedSchema>();
  /**
   * Per table schema version, the start of its keys and values with schemas, `{"schema":…,"payload":`,
   * as UTF-8 (encoded once, copied into each record).
   */
  private readonly connect = new Map<string, { key: Buffer; value: Buffer }>();
  private last: VersionedSchema | undefined;

  /** The `source` block's first, constant fields as JSON text, up to its `ts_ms`. */
  private readonly sourceHead: string;

  constructor(
    private readonly settings: EnvelopeSettings,
    schemas: readonly VersionedSchema[],
  ) {
    const q = JSON.stringify;
    this.sourceHead = `{"version":${q(settings.version)},"connector":"postgresql","name":${q(settings.topicPrefix)},`;
    for (const s of schemas) this.schemas.set(`${s.table}#${s.version}`, s);
  }

  /** The topic of a table's change records. */
  topic(table: string): string {
    return `${this.settings.topicPrefix}.${table}`;
  }

  /** The transaction metadata topic. */
  get transactionTopic(): string {
    return `${this.settings.topicPrefix}.transaction`;
  }

  private schemaOf(change: Change): VersionedSchema {
    const last = this.last;
    if (last && last.table === change.table && last.version === change.schemaVersion) return last;
    const schema = this.schemas.get(`${change.table}#${change.schemaVersion}`);
    if (!schema) throw new Error(`no schema version ${change.schemaVersion} of ${change.table} in the change log`);
    this.last = schema;
    return schema;
  }

  private connectSchemas(schema: VersionedSchema) {
    const id = `${schema.table}#${schema.version}`;
    let found = this.connect.get(id);
    if (found) return found;
    const base = this.topic(schema.table);
    const keyFields = schema.keyColumns.map((k) => columnSchema(schema.columns.find((c) => c.name === k)!, true));
    const key: ConnectSchema = { type: 'struct', fields: keyFields, optional: false, name: `${base}.Key` };
    const rowFields = schema.columns.map((c) => columnSchema(c, schema.keyColumns.includes(c.name)));
    const row: ConnectSchema = { type: 'struct', fields: rowFields, optional: true, name: `${base}.Value` };
    const value: ConnectSchema = {
      type: 'struct',
      fields: [
        { ...row, field: 'before' },
        { ...row, field: 'after' },
        SOURCE_SCHEMA,
        TRANSACTION_SCHEMA,
        { type: 'string', optional: false, field: 'op' },
        { type: 'int64', optional: true, field: 'ts_ms' },
        { type: 'int64', optional: true, field: 'ts_us' },
        { type: 'int64', optional: true, field: 'ts_ns' },
      ],
      optional: false,
      name: `${base}.Envelope`,
      version: 2,
    };
    found = { key: schemaPrefix(key), value: schemaPrefix(value) };
    this.connect.set(id, found);
    return found;
  }

  /** A key or value as JsonConverter writes it: `{schema, payload}`, or the payload alone without schemas. */
  private wrap(prefix: Buffer, payload: Json): Buffer {
    return this.wrapText(prefix, toJson(payload));
  }

  /** {@link wrap} of a payload already written as JSON text. */
  private wrapText(prefix: Buffer, text: string): Buffer {
    if (!this.settings.schemas) return Buffer.from(text);
    const out = Buffer.allocUnsafe(prefix.length + Buffer.byteLength(text) + 1);
    prefix.copy(out);
    const end = prefix.length + out.write(text, prefix.length);
    out[end] = 0x7d; // }
    return out;
  }

  /** A row as the table's value struct: every column, null where the row lacks it (a delete's key-only old row). */
  private struct(columns: readonly ColumnSchema[], row: Row | null): Json {
    if (row === null) return null;
    const out: { [k: string]: Json } = {};
    for (const c of columns) out[c.name] = c.name in row ? columnValue(c, row[c.name]!) : null;
    return out;
  }

  private keyPayload(schema: VersionedSchema, row: Row): Json {
    const payload: { [k: string]: Json } = {};
    for (const k of schema.keyColumns) payload[k] = columnValue(schema.columns.find((c) => c.name === k)!, row[k]!);
    return payload;
  }

  private keyOf(schema: VersionedSchema, row: Row | null): Buffer | null {
    if (row === null) return null;
    return this.wrap(this.connectSchemas(schema).key, this.keyPayload(schema, row));
  }

  /**
   * The records of one change: a delete is followed by a tombstone; an update that changed the key
   * is a delete of the old key (header `__debezium.newkey`), a tombstone and a create (header
   * `__debezium.oldkey`), as Debezium writes it. `tx` is the change's transaction (null for
   * snapshot reads), `snapshot` marks a read, `now` is the processing time in µs.
   */
  records(change: Change, tx: TransactionCounts | null, snapshot: SnapshotMark | null, now: bigint): DebeziumRecord[] {
    const schema = this.schemaOf(change);
    const topic = this.topic(change.table);
    const [schemaName, tableName] = splitTable(change.table);
    // The payload written field by field, in Debezium's order (each record's hot path).
    const q = JSON.stringify;
    const source = (): string =>
      `${this.sourceHead}"ts_ms":${change.commitTime / 1000n},"snapshot":${snapshot === null ? 'null' : q(snapshot)},` +
      `"db":${q(this.settings.database)},"sequence":${tx ? q(`[null,"${change.position}"]`) : 'null'},` +
      `"ts_us":${change.commitTime},"ts_ns":${change.commitTime * 1000n},"schema":${q(schemaName)},` +
      `"table":${q(tableName)},"txId":${tx ? change.xid : 'null'},"lsn":${change.position},` +
      '"xmin":null,"origin":null,"origin_lsn":null}';
    const envelope = (op: string, before: Row | null, after: Row | null): Buffer | JoinedBytes => {
      let block = 'null';
      if (tx) {
        tx.total += 1;
        const inTable = (tx.perTable.get(change.table) ?? 0) + 1;
        tx.perTable.set(change.table, inTable);
        block = `{"id":${q(`${change.xid}:${change.position}`)},"total_order":${tx.total},"data_collection_order":${inTable}}`;
      }
      const payload =
        `{"before":${toJson(this.struct(schema.columns, before))},"after":${toJson(this.struct(schema.columns, after))},` +
        `"source":${source()},"transaction":${block},"op":${q(op)},` +
        `"ts_ms":${now / 1000n},"ts_us":${now},"ts_ns":${now * 1000n}}`;
      // The schema prefix as it is cached, the payload as text: no buffer of the whole value (each change's record).
      if (!this.settings.schemas) return Buffer.from(payload);
      return new JoinedBytes([this.connectSchemas(schema).value, payload, '}']);
    };
    switch (change.op) {
      case 'r':
      case 'c':
        return [{ topic, key: this.keyOf(schema, change.after), value: envelope(change.op, null, change.after) }];
      case 'u': {
        const oldKey = change.before ? this.keyOf(schema, change.before) : null;
        const newKey = this.keyOf(schema, change.after);
        if (oldKey !== null && newKey !== null && !oldKey.equals(newKey)) {
          // The headers hold the other key's payload as JSON, without its schema.
          const newKeyHeader = { '__debezium.newkey': toJson(this.keyPayload(schema, change.after!)) };
          const oldKeyHeader = { '__debezium.oldkey': toJson(this.keyPayload(schema, change.before!)) };
          const deleted: DebeziumRecord[] = [
            { topic, key: oldKey, value: envelope('d', change.before, null), headers: newKeyHeader },
          ];
          if (this.settings.tombstones) deleted.push({ topic, key: oldKey, value: null, headers: newKeyHeader });
          return [...deleted, { topic, key: newKey, value: envelope('c', null, change.after), headers: oldKeyHeader }];
        }
        return [{ topic, key: newKey, value: envelope('u', change.before, change.after) }];
      }
      case 'd': {
        const key = this.keyOf(schema, change.before ?? change.key);
        const records: DebeziumRecord[] = [{ topic, key, value: envelope('d', change.before ?? change.key, null) }];
        if (this.settings.tombstones) records.push({ topic, key, value: null });
        return records;
      }
      case 't':
        return [{ topic, key: null, value: envelope('t', null, null) }];
    }
  }

  /** A transaction's BEGIN record (before its first change's records). */
  begin(tx: TransactionCounts): DebeziumRecord {
    return this.transactionRecord(tx, 'BEGIN', tx.id);
  }

  /** A transaction's END record (after its last change's records), counting its events per table. */
  end(tx: TransactionCounts): DebeziumRecord {
    return this.transactionRecord(tx, 'END', `${tx.xid}:${tx.commitPosition}`);
  }

  private transactionRecord(tx: TransactionCounts, status: 'BEGIN' | 'END', id: string): DebeziumRecord {
    const ended = status === 'END';
    const payload: Json = {
      status,
      id,
      event_count: ended ? BigInt(tx.total) : null,
      data_collections: ended
        ? [...tx.perTable].map(([table, count]) => ({ data_collection: table, event_count: BigInt(count) }))
        : null,
      ts_ms: tx.commitTime / 1000n,
    };
    return {
      topic: this.transactionTopic,
      key: this.wrap(TRANSACTION_KEY_SCHEMA, { id }),
      value: this.wrap(TRANSACTION_VALUE_SCHEMA, payload),
    };
  }
}

function splitTable(table: string): [string, string] {
  const dot = table.indexOf('.');
  return [table.slice(0, dot), table.slice(dot + 1)];
}
