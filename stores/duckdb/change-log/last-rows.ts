import { LIST, listValue, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import type { ColumnSchema, Row } from '../../../framework/types.js';
import { decodeRow } from '../../../framework/value-json.js';
import { encodeKey } from './log-keys.js';
import { keyPrefilter, snapshotSelectSql, streamSelectSql } from './typed-sql.js';
import type { TypedStorage } from './typed-storage.js';

/**
 * The latest logged row of `table` for each key (for unchanged TOAST values), null where none, in
 * the order of `keys`; sees the open transaction's changes (flushed first). One scan of the stream's
 * changes however many keys (an UPDATE of a whole TOASTed table asks for every row's image), then of
 * the table's snapshot for the keys the stream never touched; typed tables are narrowed on a native
 * key column before each row's key is printed.
 */
export async function lastRows(
  c: DuckDBConnection,
  storage: TypedStorage,
  table: string,
  keyColumns: readonly string[],
  columnsOf: (version: number) => readonly ColumnSchema[],
  keys: readonly Row[],
): Promise<(Row | null)[]> {
  if (keys.length === 0) return [];
  const encoded = keys.map((key) => encodeKey(key, keyColumns)!);
  const found = new Map<string, Row>();
  const lookup = async (sql: string, wanted: readonly string[]) => {
    const rows = (
      await c.runAndReadAll(sql, [table, listValue([...new Set(wanted)])], [VARCHAR, LIST(VARCHAR)])
    ).getRows() as [string, string, number][];
    for (const [key, after, version] of rows) found.set(key, decodeRow(after, columnsOf(version)));
  };
  const stream = [
    'SELECT seq, table_name, key, after, schema_version FROM _changes',
    ...storage.streams
      .filter((t) => t.table === table)
      .map(
        (t) =>
          `SELECT seq, table_name, key, after, schema_version FROM (${streamSelectSql(t, keyPrefilter(t.schema, keys))})`,
      ),
  ];
  await lookup(
    `SELECT key, after, schema_version FROM (${stream.join(' UNION ALL ')})
      WHERE table_name = $1 AND after IS NOT NULL AND key IN (SELECT unnest($2))
      QUALIFY row_number() OVER (PARTITION BY key ORDER BY seq DESC) = 1`,
    encoded,
  );
  const missing = keys.filter((_, i) => !found.has(encoded[i]!));
  const snapshot = (await storage.snapshots()).find((t) => t.table === table);
  if (missing.length > 0 && snapshot) {
    await lookup(
      `SELECT key, after, schema_version FROM (${snapshotSelectSql(snapshot, keyPrefilter(snapshot.schema, missing))}) WHERE table_name = $1 AND key IN (SELECT unnest($2))`,
      missing.map((key) => encodeKey(key, keyColumns)!),
    );
  }
  return encoded.map((key) => found.get(key) ?? null);
}
