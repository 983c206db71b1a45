import type pg from 'pg';
import { FeatureflowError } from '../../framework/errors.js';
import type { ColumnSchema, TableSchema } from '../../framework/types.js';
import type { PgTypeResolver } from './pg-types.js';
import { quoteIdent, quoteTable } from './pg-connection.js';

/** A catalog query function, as `PgTypeResolver.resolve` takes it. */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<{ rows: any[] }>;

/**
 * Checks that the server can do logical replication for this role: wal_level, the REPLICATION
 * attribute and spare slots. Each failure names the fix.
 */
export async function checkServer(client: pg.Client, where: string, slot: string): Promise<void> {
  const { rows } = await client.query(
    `SELECT current_setting('wal_level') AS wal_level,
            current_setting('max_replication_slots')::int AS max_slots,
            (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
            r.rolreplication OR r.rolsuper AS can_replicate, r.rolname AS role,
            current_setting('server_version_num')::int AS version, current_setting('server_version') AS version_text
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = rows[0];
  if (row.version < 140000) {
    throw new FeatureflowError(
      'FF_PG_VERSION',
      `PostgreSQL ${row.version_text} on ${where} is too old: featureflow needs PostgreSQL 14 or later (pgoutput's binary mode); upgrade the server`,
    );
  }
  if (row.wal_level !== 'logical') {
    throw new FeatureflowError(
      'FF_PG_WAL_LEVEL',
      `replication slot cannot be created: wal_level is '${row.wal_level}' on ${where}; set wal_level=logical ` +
        'in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server',
    );
  }
  if (row.used_slots >= row.max_slots && !(await slotExists(client, slot))) {
    throw new FeatureflowError(
      'FF_PG_SLOTS_EXHAUSTED',
      `all ${row.max_slots} replication slots on ${where} are in use, so slot ${slot} cannot be created; drop an unused ` +
        'one (SELECT pg_drop_replication_slot(name) — see pg_replication_slots) or raise max_replication_slots and restart',
    );
  }
  if (!row.can_replicate) {
    throw new FeatureflowError(
      'FF_PG_PRIVILEGE',
      `role "${row.role}" on ${where} may not use logical replication; run ALTER ROLE ${quoteIdent(row.role)} REPLICATION ` +
        '(as a superuser), or connect as a role that has it',
    );
  }
}

/**
 * Reads the schema of each configured table from the catalog and refuses what cannot be captured
 * exactly: a missing table, a table whose rows cannot be keyed, a column of an unsupported type.
 */
export async function readTableSchemas(
  client: pg.Client,
  tables: readonly string[],
  resolver: PgTypeResolver,
  where: string,
): Promise<TableSchema[]> {
  const query: CatalogQuery = (sql, params) => client.query(sql, params);
  const schemas: TableSchema[] = [];
  for (const table of tables) {
    const { rows: found } = await client.query(
      `SELECT c.oid, c.relreplident, c.relkind, has_table_privilege(c.oid, 'SELECT') AS can_select
         FROM pg_class c WHERE c.oid = to_regclass($1)`,
      [quoteTable(table)],
    );
    if (found.length === 0) {
      throw new FeatureflowError(
        'FF_PG_TABLE_MISSING',
        `table ${table} from postgres({ tables }) does not exist on ${where}; create it, or fix or remove the entry in featureflow.config.ts`,
      );
    }
    const { oid, relreplident, relkind, can_select } = found[0];
    if (relkind !== 'r' && relkind !== 'p') {
      throw new FeatureflowError(
        'FF_PG_TABLE_MISSING',
        `${table} on ${where} is not a table (relkind '${relkind}'); only tables can be captured`,
      );
    }
    if (!can_select) {
      throw new FeatureflowError(
        'FF_PG_PRIVILEGE',
        `the role may not SELECT from ${table} on ${where}, which the snapshot needs; GRANT SELECT ON ${quoteTable(table)} TO the role`,
      );
    }
    const { rows: cols } = await client.query(
      `SELECT a.attname AS name, a.atttypid AS type_oid, a.atttypmod AS type_mod, format_type(a.atttypid, a.atttypmod) AS type_name
         FROM pg_attribute a
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        ORDER BY a.attnum`,
      [oid],
    );
    const { rows: keyRows } = await client.query(
      `SELECT a.attname AS name, i.indisprimary
         FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1 AND (i.indisprimary OR (i.indisreplident AND $2 = 'i'))
        ORDER BY i.indisprimary DESC, k.ord`,
      [oid, relreplident],
    );
    const primary = keyRows.filter((r) => r.indisprimary).map((r) => r.name as string);
    const identity = keyRows.filter((r) => !r.indisprimary).map((r) => r.name as string);
    let keyColumns: string[];
    if (relreplident === 'f') keyColumns = primary.length > 0 ? primary : cols.map((c) => c.name as string);
    else if (relreplident === 'i' && identity.length > 0) keyColumns = identity;
    else if (relreplident === 'd' && primary.length > 0) keyColumns = primary;
    else {
      throw new FeatureflowError(
        'FF_PG_NO_KEY',
        `table ${table} on ${where} has no primary key and REPLICA IDENTITY is not FULL, so its updates and deletes ` +
          `cannot be keyed; add a primary key (ALTER TABLE ${quoteTable(table)} ADD PRIMARY KEY (…)) or run ` +
          `ALTER TABLE ${quoteTable(table)} REPLICA IDENTITY FULL`,
      );
    }
    const columns: ColumnSchema[] = [];
    for (const col of cols) {
      let resolved: { type: string; array: boolean };
      try {
        resolved = await resolver.resolve(col.type_oid, query);
      } catch (error) {
        throw new FeatureflowError(
          'FF_PG_TYPE_UNSUPPORTED',
          `column ${table}.${col.name} has type ${col.type_name}, which featureflow cannot decode exactly; ` +
            'change the column type, or capture a table without it',
          { cause: error },
        );
      }
      columns.push({
        name: col.name,
        ...resolved,
        typeOid: col.type_oid,
        key: keyColumns.includes(col.name),
        ...(col.type_mod >= 0 ? { typeModifier: col.type_mod } : {}),
      });
    }
    schemas.push({ table, columns, keyColumns });
  }
  return schemas;
}

async function slotExists(client: pg.Client, slot: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return rows.length > 0;
}

/**
 * Of `columns`, just added to `table`, those that rows already in the table may hold a value in
 * without any change in the WAL: a default PostgreSQL keeps as the column's missing value
 * (`ADD COLUMN … DEFAULT <constant>`), or one written by a table rewrite (a volatile default). Empty
 * when the table is gone (the stream may lag behind the catalog: `to_regclass` is then NULL).
 */
export async function columnsFilledWithoutChanges(
  query: CatalogQuery,
  table: string,
  columns: readonly string[],
): Promise<string[]> {
  const { rows } = await query(
    `SELECT a.attname FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) AND NOT a.attisdropped AND (a.atthasmissing OR d.adbin IS NOT NULL)
      ORDER BY a.attnum`,
    [quoteTable(table), [...columns]],
  );
  return rows.map((r: { attname: string }) => r.attname);
}
