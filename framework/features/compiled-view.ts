import { FeatureflowError } from '../errors.js';
import type { ColumnSchema, Row, TableSchema, Value } from '../types.js';
import { typeName, type FeatureType } from './feature-types.js';
import { toStoredValue, type StoredFeatureValue } from './feature-values.js';
import type { FeatureView, TransformContext } from './feature-view.js';

/** A row the view rejected: the transform or filter threw, or returned a value of the wrong type. */
export class FeatureRowError extends Error {
  override readonly name = 'FeatureRowError';
}

/** A view checked against its source table's schema, ready to turn rows into stored feature values. */
export interface CompiledView {
  readonly view: FeatureView;
  readonly schema: TableSchema;
  /** Feature names in declaration order (the order of {@link evaluate}'s values). */
  readonly featureNames: readonly string[];
  readonly featureTypes: readonly FeatureType[];
  /** Source columns the transform and filter read (declared, or found by the probe). */
  readonly columnsRead: readonly string[];
  /** Stored feature values of a row, or null when the filter rejects it. Throws {@link FeatureRowError}. */
  evaluate(row: Row, context: TransformContext): StoredFeatureValue[] | null;
}

/** Source column types a feature may take unchanged when the view has no transform. */
const COMPATIBLE: Record<string, readonly string[]> = {
  float32: ['int2', 'int4', 'int8', 'oid', 'float4', 'float8', 'numeric'],
  float64: ['int2', 'int4', 'int8', 'oid', 'float4', 'float8', 'numeric'],
  int32: ['int2', 'int4'],
  int64: ['int2', 'int4', 'int8', 'oid'],
  bool: ['bool'],
  text: ['text', 'enum', 'uuid', 'json', 'jsonb', 'numeric', 'date', 'time', 'timetz', 'interval'],
  timestamp: ['timestamptz', 'timestamp', 'date'],
  tensor: ['int2', 'int4', 'int8', 'float4', 'float8', 'numeric'],
};

function columnType(c: ColumnSchema): string {
  return c.array ? `${c.type}[]` : c.type;
}

/** The default transform's conversion of a column value to a feature value (exact `Value` forms, see types.ts). */
function defaultValue(value: Value | undefined, column: ColumnSchema, type: FeatureType): unknown {
  if (value === null || value === undefined) return null;
  if (type.kind === 'tensor') {
    if (column.type === 'bytea' && value instanceof Uint8Array) return value;
    if (!Array.isArray(value)) return value;
    return (value as unknown[])
      .flat(Infinity as 1)
      .map((v) => (typeof v === 'string' || typeof v === 'bigint' ? Number(v) : v));
  }
  switch (type.dtype) {
    case 'float32':
    case 'float64':
      return typeof value === 'string' || typeof value === 'bigint' ? Number(value) : value;
    default:
      return value;
  }
}

function probeValue(c: ColumnSchema): Value {
  if (c.array) return [];
  switch (c.type) {
    case 'bool':
      return false;
    case 'int2':
    case 'int4':
    case 'oid':
      return 1;
    case 'float4':
    case 'float8':
      return 0.5;
    case 'int8':
      return 1n;
    case 'numeric':
      return '1';
    case 'bytea':
      return new Uint8Array(0);
    case 'uuid':
      return '00000000-0000-0000-0000-000000000000';
    case 'json':
    case 'jsonb':
      return '{}';
    case 'date':
      return '2000-01-01';
    case 'timestamp':
      return '2000-01-01T00:00:00.000000';
    case 'timestamptz':
      return '2000-01-01T00:00:00.000000Z';
    case 'time':
      return '00:00:00.000000';
    case 'timetz':
      return '00:00:00.000000+00:00';
    case 'interval':
      return 'PT0S';
    default:
      return 'x';
  }
}

/** Properties a runtime may look up on any object; reading them is not reading a column. */
const IGNORED_PROPS = new Set([
  'then',
  'toJSON',
  'constructor',
  'valueOf',
  'toString',
  'hasOwnProperty',
  'asymmetricMatch',
  '$$typeof',
  'nodeType',
]);

/** Runs `fn` on a probe row of `schema`, recording the columns it reads and those the table lacks. */
function probe<T>(schema: TableSchema, fn: (row: Row) => T): { reads: Set<string>; unknown: Set<string>; result?: T } {
  const target: Row = {};
  for (const c of schema.columns) target[c.name] = probeValue(c);
  const reads = new Set<string>();
  const unknown = new Set<string>();
  const proxy = new Proxy(target, {
    get(t, prop, receiver) {
      if (typeof prop === 'string' && !IGNORED_PROPS.has(prop)) {
        if (prop in t) reads.add(prop);
        else unknown.add(prop);
      }
      return Reflect.get(t, prop, receiver);
    },
  });
  try {
    return { reads, unknown, result: fn(proxy) };
  } catch {
    // Probe values are made up; a transform may reject them. What it read before throwing still counts.
    return { reads, unknown };
  }
}

function definitionError(view: FeatureView, message: string): FeatureflowError {
  return new FeatureflowError('FF_FEATURE_DEFINITION', `feature view ${view.name} v${view.version} ${message}`);
}

/** The JS type category a scalar feature's value must have (for the start-up probe check). */
function probeTypeProblem(type: FeatureType, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (type.kind === 'tensor') return Array.isArray(value) || ArrayBuffer.isView(value) ? null : `a ${typeof value}`;
  const ok =
    type.dtype === 'int64'
      ? typeof value === 'bigint' || typeof value === 'number'
      : type.dtype === 'bool'
        ? typeof value === 'boolean'
        : type.dtype === 'text'
          ? typeof value === 'string'
          : type.dtype === 'timestamp'
            ? typeof value === 'string' || value instanceof Date
            : typeof value === 'number';
  return ok ? null : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

/**
 * Checks a view against the schema of its source table and compiles its row program. Fails with
 * FF_FEATURE_DEFINITION, naming the view, the column and the fix, when the entity keys or a column
 * the transform reads are missing, or when the transform returns features of the wrong kind.
 */
export function compileView(view: FeatureView, schema: TableSchema): CompiledView {
  const byName = new Map(schema.columns.map((c) => [c.name, c]));
  const columnList = schema.columns.map((c) => c.name).join(', ');
  const missing = (column: string, what: string, fix: string) =>
    definitionError(
      view,
      `${what} column ${JSON.stringify(column)}, which ${schema.table} does not have (its columns: ${columnList}); ${fix}`,
    );

  for (const key of view.entity.keys) {
    if (!byName.has(key))
      throw missing(
        key,
        `has entity ${view.entity.name} keyed by`,
        `give the entity the key columns of ${schema.table}`,
      );
  }
  for (const c of view.columns ?? []) {
    if (!byName.has(c))
      throw missing(c, 'declares in `columns` the', 'fix the columns list or add the column to the table');
  }

  const featureNames = Object.keys(view.features);
  const featureTypes = featureNames.map((f) => view.features[f]!);
  let transform: (row: Row, context: TransformContext) => Record<string, unknown>;
  const reads = new Set<string>(view.entity.keys);

  if (view.transform) {
    transform = view.transform as (row: Row, context: TransformContext) => Record<string, unknown>;
    const probed = probe(schema, (row) => transform(row, { op: 'c', table: schema.table }));
    for (const c of probed.unknown)
      throw missing(c, 'has a transform that reads', 'fix the transform, or add the column to the table');
    for (const c of probed.reads) reads.add(c);
    const result = probed.result;
    if (result !== undefined) {
      if (result === null || typeof result !== 'object') {
        throw definitionError(
          view,
          `has a transform that returns ${result === null ? 'null' : typeof result}; return an object with the features ${featureNames.join(', ')}`,
        );
      }
      for (const f of featureNames) {
        if (!(f in result))
          throw definitionError(
            view,
            `has a transform that does not return feature ${f}; return it (null when unknown)`,
          );
        const problem = probeTypeProblem(view.features[f]!, result[f]);
        if (problem) {
          throw definitionError(
            view,
            `has a transform that returns ${problem} for feature ${f}, declared ${typeName(view.features[f]!)}; convert the value or change the declared type`,
          );
        }
      }
      for (const f of Object.keys(result)) {
        if (!featureNames.includes(f))
          throw definitionError(
            view,
            `has a transform that returns feature ${f}, which is not declared; add it to features or drop it`,
          );
      }
    }
  } else {
    for (let i = 0; i < featureNames.length; i++) {
      const f = featureNames[i]!;
      const type = featureTypes[i]!;
      const column = byName.get(f);
      if (!column)
        throw missing(
          f,
          'has no transform, so feature ' + f + ' needs the',
          'write a transform, or name the feature after a column',
        );
      const ok =
        (COMPATIBLE[type.kind === 'tensor' ? 'tensor' : type.dtype] ?? []).includes(column.type) &&
        (type.kind === 'tensor') === column.array;
      if (!ok && !(type.kind === 'tensor' && column.type === 'bytea' && !column.array)) {
        throw definitionError(
          view,
          `declares feature ${f} as ${typeName(type)} but column ${f} of ${schema.table} is ${columnType(column)}; declare a matching type or write a transform`,
        );
      }
      reads.add(f);
    }
    const columns = featureNames.map((f) => byName.get(f)!);
    transform = (row) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < featureNames.length; i++)
        out[featureNames[i]!] = defaultValue(row[featureNames[i]!], columns[i]!, featureTypes[i]!);
      return out;
    };
  }

  if (view.filter) {
    const filter = view.filter;
    const probed = probe(schema, (row) => filter(row, { op: 'c', table: schema.table }));
    for (const c of probed.unknown)
      throw missing(c, 'has a filter that reads', 'fix the filter, or add the column to the table');
    for (const c of probed.reads) reads.add(c);
  }
  if (view.columns) {
    for (const c of reads) {
      if (!view.columns.includes(c) && !view.entity.keys.includes(c)) {
        throw definitionError(
          view,
          `reads column ${JSON.stringify(c)} that its \`columns\` list leaves out; add it to columns`,
        );
      }
    }
  }

  const filter = view.filter;
  const n = featureNames.length;
  return {
    view,
    schema,
    featureNames,
    featureTypes,
    columnsRead: [...reads],
    evaluate(row, context) {
      let result: Record<string, unknown>;
      try {
        if (filter && !filter(row, context)) return null;
      } catch (error) {
        throw new FeatureRowError(`filter threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      }
      try {
        result = transform(row, context);
      } catch (error) {
        throw new FeatureRowError(`transform threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      }
      if (result === null || typeof result !== 'object') {
        throw new FeatureRowError(
          `transform returned ${result === null ? 'null' : typeof result}; return an object with the features ${featureNames.join(', ')}`,
        );
      }
      const values = new Array<StoredFeatureValue>(n);
      for (let i = 0; i < n; i++) {
        const v = result[featureNames[i]!];
        if (v === undefined)
          throw new FeatureRowError(
            `transform did not return feature ${featureNames[i]}; return it (null when unknown)`,
          );
        try {
          values[i] = toStoredValue(featureTypes[i]!, v);
        } catch (error) {
          throw new FeatureRowError(`feature ${featureNames[i]}: ${(error as Error).message}`);
        }
      }
      return values;
    },
  };
}

/** The entity key values of a row, or a reason why it has none. */
export function entityKey(view: FeatureView, row: Row | null): Value[] | string {
  if (!row) return 'the change carries no row';
  const out: Value[] = [];
  for (const k of view.entity.keys) {
    const v = row[k];
    if (v === undefined)
      return `the change does not carry key column ${k} (set REPLICA IDENTITY FULL on the table, or key the entity by the primary key)`;
    if (v === null) return `key column ${k} is null`;
    out.push(v);
  }
  return out;
}
