import type { ColumnSchema } from '../../framework/types.js';

/**
 * Debezium's PostgreSQL column types read back: a Kafka Connect schema (as JsonConverter writes it),
 * a declared type, or a value without schemas gives the PostgreSQL type and the form its values
 * arrive in (`debezium-decode.ts` reads the values). The reverse of what `stores/debezium` writes;
 * the types' forms are Debezium's documented ones
 * (https://debezium.io/documentation/reference/stable/connectors/postgresql.html#postgresql-data-types).
 */

/** A Kafka Connect schema (the part of JsonConverter's `schema` a column's type needs). */
export interface ConnectField {
  readonly type: string;
  readonly optional?: boolean;
  readonly name?: string;
  readonly field?: string;
  readonly parameters?: Readonly<Record<string, string>>;
  readonly fields?: readonly ConnectField[];
  readonly items?: ConnectField;
}

/** A captured column and the form its values arrive in (a Connect semantic name or a JSON type). */
export interface DecodedColumn {
  readonly schema: ColumnSchema;
  /** The Connect semantic name (`io.debezium.time.MicroTimestamp`…) or type (`int64`…) of an element. */
  readonly encoding: string;
}

/** PostgreSQL OIDs of the scalar types a Debezium column maps to (arrays: see {@link ARRAY_OID}). */
const OID: Readonly<Record<string, number>> = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  float4: 700,
  float8: 701,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  enum: 0,
};
const ARRAY_OID: Readonly<Record<string, number>> = {
  bool: 1000,
  bytea: 1001,
  int8: 1016,
  int2: 1005,
  int4: 1007,
  text: 1009,
  json: 199,
  float4: 1021,
  float8: 1022,
  date: 1182,
  time: 1183,
  timestamp: 1115,
  timestamptz: 1185,
  interval: 1187,
  timetz: 1270,
  numeric: 1231,
  uuid: 2951,
  jsonb: 3807,
  enum: 0,
};

/** Connect semantic names → the PostgreSQL type Debezium writes with them. */
const BY_NAME: Readonly<Record<string, string>> = {
  'org.apache.kafka.connect.data.Decimal': 'numeric',
  'io.debezium.data.VariableScaleDecimal': 'numeric',
  'io.debezium.data.Uuid': 'uuid',
  'io.debezium.data.Json': 'json',
  'io.debezium.data.Enum': 'enum',
  'io.debezium.time.Date': 'date',
  'org.apache.kafka.connect.data.Date': 'date',
  'io.debezium.time.Timestamp': 'timestamp',
  'io.debezium.time.MicroTimestamp': 'timestamp',
  'io.debezium.time.NanoTimestamp': 'timestamp',
  'org.apache.kafka.connect.data.Timestamp': 'timestamp',
  'io.debezium.time.ZonedTimestamp': 'timestamptz',
  'io.debezium.time.Time': 'time',
  'io.debezium.time.MicroTime': 'time',
  'io.debezium.time.NanoTime': 'time',
  'org.apache.kafka.connect.data.Time': 'time',
  'io.debezium.time.ZonedTime': 'timetz',
  'io.debezium.time.MicroDuration': 'interval',
  'io.debezium.time.Interval': 'interval',
};

/** Connect primitive types → PostgreSQL types. */
const BY_TYPE: Readonly<Record<string, string>> = {
  boolean: 'bool',
  int8: 'int2',
  int16: 'int2',
  int32: 'int4',
  int64: 'int8',
  float: 'float4',
  float32: 'float4',
  double: 'float8',
  float64: 'float8',
  string: 'text',
  bytes: 'bytea',
};

/** What a declared type (`columnTypes`, or Debezium's `__debezium.source.column.type`) reads as. */
const DECLARED: Readonly<Record<string, string>> = {
  bool: 'bool',
  boolean: 'bool',
  int2: 'int2',
  smallint: 'int2',
  int4: 'int4',
  integer: 'int4',
  int: 'int4',
  serial: 'int4',
  int8: 'int8',
  bigint: 'int8',
  bigserial: 'int8',
  float4: 'float4',
  real: 'float4',
  float8: 'float8',
  'double precision': 'float8',
  numeric: 'numeric',
  decimal: 'numeric',
  text: 'text',
  varchar: 'text',
  'character varying': 'text',
  bpchar: 'text',
  char: 'text',
  character: 'text',
  name: 'text',
  bytea: 'bytea',
  uuid: 'uuid',
  json: 'json',
  jsonb: 'jsonb',
  date: 'date',
  timestamp: 'timestamp',
  'timestamp without time zone': 'timestamp',
  timestamptz: 'timestamptz',
  'timestamp with time zone': 'timestamptz',
  time: 'time',
  'time without time zone': 'time',
  timetz: 'timetz',
  'time with time zone': 'timetz',
  interval: 'interval',
};

/**
 * A declared PostgreSQL type (`numeric(30,5)`, `int8[]`, `_int4`, `timestamp(3)`) as featureflow's
 * type, array flag and type modifier; null when featureflow does not know the name.
 */
export function declaredType(text: string): { type: string; array: boolean; typeModifier?: number } | null {
  let t = text.trim().toLowerCase();
  let array = false;
  if (t.endsWith('[]')) [t, array] = [t.replace(/(\[\])+$/, ''), true];
  else if (t.startsWith('_')) [t, array] = [t.slice(1), true];
  const m = /^([a-z][a-z0-9 ]*?)\s*(?:\((\d+)(?:\s*,\s*(\d+))?\))?$/.exec(t);
  const type = m ? DECLARED[m[1]!] : undefined;
  if (!m || !type) return null;
  if (type === 'numeric' && m[2] !== undefined)
    return { type, array, typeModifier: ((Number(m[2]) << 16) | Number(m[3] ?? 0)) + 4 };
  if ((type === 'timestamp' || type === 'timestamptz' || type === 'time') && m[2] !== undefined)
    return { type, array, typeModifier: Number(m[2]) };
  return { type, array };
}

/** A column of a Connect schema (with `declared`, the type the user or Debezium named, overriding). */
export function columnOfField(field: ConnectField, key: boolean, declared?: string): DecodedColumn | null {
  const element = field.type === 'array' && field.items ? field.items : field;
  const named = element.name ? BY_NAME[element.name] : undefined;
  const fromSchema = named ?? BY_TYPE[element.type];
  const source = declared ?? field.parameters?.['__debezium.source.column.type'];
  const given = source ? declaredType(source) : null;
  const type = given?.type ?? fromSchema;
  if (!type) return null;
  let typeModifier = given?.typeModifier;
  if (typeModifier === undefined && element.name === 'org.apache.kafka.connect.data.Decimal') {
    const p = Number(element.parameters?.['connect.decimal.precision'] ?? 0);
    const s = Number(element.parameters?.scale ?? 0);
    if (p > 0) typeModifier = ((p << 16) | s) + 4;
  }
  const array = given?.array ?? field.type === 'array';
  return {
    schema: column(field.field ?? '', type, array, key, typeModifier),
    encoding: element.name ?? element.type,
  };
}

/**
 * A column of a record without schemas, from a JSON value (integers are int8, other numbers float8,
 * strings text, arrays of the first element's type), unless `declared` names its type.
 */
export function columnOfValue(name: string, value: unknown, key: boolean, declared?: string): DecodedColumn {
  const given = declared ? declaredType(declared) : null;
  if (given) return { schema: column(name, given.type, given.array, key, given.typeModifier), encoding: 'json' };
  const array = Array.isArray(value);
  let sample: unknown = value;
  while (Array.isArray(sample)) sample = sample.find((v) => v !== null);
  const type =
    typeof sample === 'boolean'
      ? 'bool'
      : typeof sample === 'bigint' || (typeof sample === 'number' && Number.isInteger(sample))
        ? 'int8'
        : typeof sample === 'number'
          ? 'float8'
          : 'text';
  return { schema: column(name, type, array, key), encoding: 'json' };
}

function column(name: string, type: string, array: boolean, key: boolean, typeModifier?: number): ColumnSchema {
  return {
    name,
    type,
    array,
    typeOid: (array ? ARRAY_OID[type] : OID[type]) ?? 0,
    key,
    ...(typeModifier === undefined ? {} : { typeModifier }),
  };
}
