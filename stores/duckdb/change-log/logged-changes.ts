import { listValue, type DuckDBConnection } from '@duckdb/node-api';
import type { Change, ColumnSchema, Op, Position } from '../../../framework/types.js';
import { decodeRow } from '../../../framework/value-json.js';

/** Changes read per page. */
const PAGE = 10_000;

/** Which logged changes to read. */
export interface LoggedChangesQuery {
  readonly tables: readonly string[];
  /** Only changes of transactions that committed after this position. */
  readonly committedAfter?: Position;
  /** Only these changes (by `seq`), for a sample. */
  readonly seqs?: readonly bigint[];
  /** The stored columns of a table's schema version (to decode the rows' JSON). */
  columnsOf(table: string, version: number): readonly ColumnSchema[];
}

/**
 * The change log's changes of some tables, in commit order (`seq`), decoded, in pages of at most
 * {@link PAGE}: windows of `seq` rather than LIMIT pages, because a snapshot's rows get their seq in
 * the view. For building a new feature view version, and re-scoring after a stop.
 */
export async function* loggedChanges(c: DuckDBConnection, query: LoggedChangesQuery): AsyncGenerator<Change[]> {
  if (query.tables.length === 0) return;
  const tables = `table_name IN (SELECT unnest($1::VARCHAR[]))`;
  let after = query.committedAfter === undefined ? '' : ` AND commit_lsn > ${BigInt(query.committedAfter)}::UBIGINT`;
  if (query.seqs !== undefined) {
    if (query.seqs.length === 0) return;
    after += ` AND seq IN (${query.seqs.map((s) => BigInt(s)).join(', ')})`;
  }
  const list = listValue([...query.tables]);
  const [low, high] = (
    await c.runAndReadAll(`SELECT min(seq), max(seq) FROM change_log WHERE ${tables}${after}`, [list])
  ).getRows()[0] as [bigint | null, bigint | null];
  if (low === null || high === null) return;
  for (let from = BigInt(low) - 1n; from < BigInt(high); from += BigInt(PAGE)) {
    const to = from + BigInt(PAGE) < BigInt(high) ? from + BigInt(PAGE) : BigInt(high);
    const rows = (
      await c.runAndReadAll(
        `SELECT table_name, op, key, before, after, lsn, commit_lsn, epoch_us(commit_time), xid, schema_version FROM change_log
          WHERE ${tables}${after} AND seq > $2 AND seq <= $3 ORDER BY seq`,
        [list, from, to],
      )
    ).getRows() as [
      string,
      string,
      string | null,
      string | null,
      string | null,
      bigint,
      bigint,
      bigint,
      bigint,
      number,
    ][];
    if (rows.length === 0) continue;
    yield rows.map(([table, op, key, before, afterRow, lsn, commitLsn, time, xid, version]) => {
      const columns = query.columnsOf(table, version);
      return {
        table,
        op: op as Op,
        key: key === null ? null : decodeRow(key, columns),
        before: before === null ? null : decodeRow(before, columns),
        after: afterRow === null ? null : decodeRow(afterRow, columns),
        position: BigInt(lsn),
        commitPosition: BigInt(commitLsn),
        commitTime: BigInt(time),
        xid: Number(xid),
        schemaVersion: version,
      };
    });
  }
}
