/**
 * The log's commit records: `_commits`, one row appended with each commit of the log, never
 * updated. The newest row (highest `seq`) holds the log's checkpoint and the position every
 * publisher sent through; older rows are deleted now and then, in a commit that writes a newer one.
 *
 * Appended, not updated: with DuckDB alone on a quiet two-core machine, a commit of 17 rows into
 * three tables took 6.5–7.1 ms of CPU with an UPDATE of a one-row checkpoint table, 5.2 ms with an
 * appended row instead (the UPDATE itself ~1 ms, and the COMMIT ~0.9 ms more after it). Before,
 * the checkpoint and a publisher's position were two UPDATEs in every commit of streamed changes
 * under a bus between processes.
 */
import {
  BIGINT,
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  TIMESTAMPTZ,
  UBIGINT,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
} from '@duckdb/node-api';

/** The table's DDL (see log-schema.ts). */
export const COMMITS_DDL = `
CREATE TABLE IF NOT EXISTS _commits (
  seq BIGINT NOT NULL,
  -- The log's checkpoint after the commit; NULL until the first snapshot commits.
  lsn UBIGINT,
  committed_at TIMESTAMPTZ NOT NULL,
  -- Per change publisher (ChangePublisher.id), the newest commit position it sent: {"id": "123"}.
  published VARCHAR NOT NULL
);`;

/** The log's checkpoint in SQL: the newest commit record's. */
export const CHECKPOINT_LSN_SQL = '(SELECT lsn FROM _commits ORDER BY seq DESC LIMIT 1)';

/** Records kept before older ones are deleted (with the next commit). */
const PRUNE_EVERY = 4096;

const COLUMNS = [BIGINT, UBIGINT, TIMESTAMPTZ, VARCHAR];

/** Publisher positions as stored: decimal strings, as JSON has no 64-bit integers. */
function encodePositions(positions: ReadonlyMap<string, bigint>): string {
  return JSON.stringify(Object.fromEntries([...positions].map(([id, p]) => [id, p.toString()])));
}

function decodePositions(json: string): Map<string, bigint> {
  return new Map(Object.entries(JSON.parse(json) as Record<string, string>).map(([id, p]) => [id, BigInt(p)]));
}

/** The newest record, as read by a process that only reads the file (no appender). */
export async function newestCommit(
  c: DuckDBConnection,
): Promise<{ seq: bigint; lsn: bigint | null; published: Map<string, bigint> } | null> {
  const row = (
    await c.runAndReadAll('SELECT seq, lsn, published FROM _commits ORDER BY seq DESC LIMIT 1')
  ).getRows()[0];
  if (!row) return null;
  const [seq, lsn, published] = row as [bigint, bigint | null, string];
  return { seq: BigInt(seq), lsn: lsn === null ? null : BigInt(lsn), published: decodePositions(published) };
}

/**
 * The writer's side: what the newest committed record holds, and records appended into the
 * connection's open transaction (or one of their own), each carrying every publisher's position.
 */
export class CommitRecords {
  /** The newest committed record's `seq`, checkpoint and publisher positions. */
  private seq = 0n;
  private lsn: bigint | null = null;
  private positions = new Map<string, bigint>();
  /** A record appended in the open transaction, taken as committed by {@link committed}. */
  private appended: { seq: bigint; lsn: bigint | null; positions: Map<string, bigint> } | undefined;

  private constructor(
    private readonly c: DuckDBConnection,
    private readonly appender: DuckDBAppender,
  ) {}

  /** Opens the records of a log whose tables exist (and were migrated). */
  static async open(c: DuckDBConnection): Promise<CommitRecords> {
    const records = new CommitRecords(c, await c.createAppender('_commits'));
    await records.reload();
    return records;
  }

  /** Reads the newest committed record again (after a rollback). */
  async reload(): Promise<void> {
    this.appended = undefined;
    const newest = await newestCommit(this.c);
    this.seq = newest?.seq ?? 0n;
    this.lsn = newest?.lsn ?? null;
    this.positions = newest?.published ?? new Map();
  }

  /** The checkpoint of the newest record, the open transaction's included. */
  get checkpoint(): bigint | null {
    return this.appended ? this.appended.lsn : this.lsn;
  }

  /** A publisher's position in the newest record, the open transaction's included. */
  published(publisher: string): bigint | null {
    return (this.appended?.positions ?? this.positions).get(publisher) ?? null;
  }

  /**
   * Appends a record with checkpoint `lsn` (unchanged when undefined) and `published` positions
   * over those of the newest record, into the open transaction (or, outside one, committed at once).
   * Every {@link PRUNE_EVERY} records, the older ones are deleted in the same transaction.
   */
  async append(lsn: bigint | null | undefined, published?: ReadonlyMap<string, bigint>): Promise<void> {
    const base = this.appended ?? { seq: this.seq, lsn: this.lsn, positions: this.positions };
    const positions = new Map(base.positions);
    for (const [id, position] of published ?? []) positions.set(id, position);
    const record = { seq: base.seq + 1n, lsn: lsn === undefined ? base.lsn : lsn, positions };
    const chunk = DuckDBDataChunk.create(COLUMNS, 1);
    chunk.setColumns([
      [record.seq],
      [record.lsn],
      [new DuckDBTimestampTZValue(BigInt(Date.now()) * 1000n)],
      [encodePositions(positions)],
    ]);
    this.appender.appendDataChunk(chunk);
    this.appender.flushSync();
    if (record.seq % BigInt(PRUNE_EVERY) === 0n) await this.c.run(`DELETE FROM _commits WHERE seq < ${record.seq}`);
    this.appended = record;
  }

  /** Appends a record of its own transaction. */
  async appendCommitted(lsn: bigint | null | undefined, published?: ReadonlyMap<string, bigint>): Promise<void> {
    await this.append(lsn, published);
    this.committed();
  }

  /** The transaction holding the appended record committed. */
  committed(): void {
    if (!this.appended) return;
    ({ seq: this.seq, lsn: this.lsn, positions: this.positions } = this.appended);
    this.appended = undefined;
  }

  /** The transaction holding the appended record rolled back. */
  rolledBack(): void {
    this.appended = undefined;
  }

  /** Deletes every record (in the open transaction of a reset), then appends one with no checkpoint and the publishers' positions. */
  async restart(): Promise<void> {
    await this.c.run('DELETE FROM _commits');
    await this.append(null);
  }

  close(): void {
    this.appender.closeSync();
  }
}

/**
 * A file from before `_commits`, opened read only (nothing may migrate it): its checkpoint
 * (`_checkpoint.lsn`) read as one commit record, through a view of this connection's own.
 */
export async function legacyCommitsView(c: DuckDBConnection): Promise<void> {
  const [commits, lsn] = (
    await c.runAndReadAll(
      `SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = '_commits' AND NOT temporary),
              (SELECT count(*) FROM duckdb_columns() WHERE table_name = '_checkpoint' AND column_name = 'lsn')`,
    )
  ).getRows()[0] as [bigint, bigint];
  if (Number(commits) > 0 || Number(lsn) === 0) return;
  await c.run(
    `CREATE TEMP VIEW _commits AS SELECT 1::BIGINT AS seq, lsn, updated_at AS committed_at, '{}' AS published FROM _checkpoint WHERE id = 1`,
  );
}
