import type { ColumnSchema, TableSchema, VersionedSchema } from '../../framework/types.js';
import { columnOfField, columnOfValue, type ConnectField, type DecodedColumn } from './debezium-columns.js';

/** A table's columns as one record gives them, with the schema version they are stored under. */
export interface Shape {
  readonly table: string;
  readonly version: number;
  readonly columns: readonly DecodedColumn[];
  readonly keyColumns: readonly string[];
}

/**
 * The schema versions of the captured tables as records show them: a record whose columns (names,
 * types, key) differ from the table's latest version starts a new one, numbered after those stored.
 * With schemas a record's Connect schema names the types; without, the first values seen do (or the
 * configured `columnTypes`), and a record with other column names starts a new version.
 */
export class TableShapes {
  private readonly latest = new Map<string, VersionedSchema>();
  private readonly byKey = new Map<string, Shape>();
  private pending: VersionedSchema[] = [];

  constructor(
    stored: readonly VersionedSchema[],
    private readonly columnTypes: Readonly<Record<string, Readonly<Record<string, string>>>>,
  ) {
    for (const s of stored) if ((this.latest.get(s.table)?.version ?? 0) < s.version) this.latest.set(s.table, s);
  }

  /** Schemas first seen since the last call (to be stored with the batch that uses them). */
  takeNew(): VersionedSchema[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** The table's latest shape, if any record or stored schema showed one. */
  current(table: string): Shape | undefined {
    const s = this.latest.get(table);
    if (!s) return undefined;
    const known = this.byKey.get(`latest:${table}#${s.version}`);
    if (known) return known;
    // A stored version no record of this run showed yet: its columns as stored.
    const shape: Shape = {
      table,
      version: s.version,
      columns: s.columns.map((c) => ({ schema: c, encoding: 'json' })),
      keyColumns: s.keyColumns,
    };
    this.byKey.set(`latest:${table}#${s.version}`, shape);
    return shape;
  }

  /** The shape of a record with a Connect schema (`row`: the `after`/`before` struct). */
  ofConnect(table: string, row: ConnectField, keyNames: readonly string[] | null): Shape | string {
    const cacheKey = `connect:${table}:${JSON.stringify(row.fields)}:${keyNames?.join(',')}`;
    const cached = this.byKey.get(cacheKey);
    if (cached) return cached;
    const columns: DecodedColumn[] = [];
    for (const field of row.fields ?? []) {
      const key = keyNames ? keyNames.includes(field.field ?? '') : true;
      const column = columnOfField(field, key, this.columnTypes[table]?.[field.field ?? '']);
      if (!column)
        return `column ${field.field} has Connect type ${field.name ?? field.type}, which featureflow does not read; name its PostgreSQL type in columnTypes`;
      columns.push(column);
    }
    return this.remember(cacheKey, table, columns);
  }

  /** The shape of a record without schemas, from its row's values. */
  ofValues(table: string, row: Readonly<Record<string, unknown>>, keyNames: readonly string[] | null): Shape {
    const names = Object.keys(row);
    const cacheKey = `values:${table}:${names.join(',')}:${keyNames?.join(',')}`;
    const cached = this.byKey.get(cacheKey);
    if (cached) return cached;
    const declared = this.columnTypes[table] ?? {};
    const key = (name: string) => (keyNames ? keyNames.includes(name) : true);
    // A stored version with the same columns keeps its types (values seen later may be null).
    const stored = this.latest.get(table);
    if (
      stored &&
      stored.columns.length === names.length &&
      stored.columns.every((c, i) => c.name === names[i] && c.key === key(c.name))
    ) {
      const columns = stored.columns.map((c) => ({ schema: c, encoding: 'json' }));
      return this.remember(cacheKey, table, columns);
    }
    const columns = names.map((name) => columnOfValue(name, row[name], key(name), declared[name]));
    return this.remember(cacheKey, table, columns);
  }

  private remember(cacheKey: string, table: string, columns: readonly DecodedColumn[]): Shape {
    const schema: TableSchema = {
      table,
      columns: columns.map((c) => c.schema),
      keyColumns: columns.filter((c) => c.schema.key).map((c) => c.schema.name),
    };
    const latest = this.latest.get(table);
    let version = latest?.version ?? 0;
    if (!latest || !sameColumns(latest.columns, schema.columns)) {
      version += 1;
      const versioned = { ...schema, version };
      this.latest.set(table, versioned);
      this.pending.push(versioned);
    }
    const shape: Shape = { table, version, columns, keyColumns: schema.keyColumns };
    this.byKey.set(cacheKey, shape);
    this.byKey.set(`latest:${table}#${version}`, shape);
    return shape;
  }
}

function sameColumns(a: readonly ColumnSchema[], b: readonly ColumnSchema[]): boolean {
  const strip = (c: ColumnSchema) => [c.name, c.type, c.array, c.key, c.typeModifier ?? null];
  return JSON.stringify(a.map(strip)) === JSON.stringify(b.map(strip));
}
