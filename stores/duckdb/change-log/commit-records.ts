/**
 * The log's commit records: `_commits`, one row added with each commit of the log, never updated.
 * The newest row (highest `seq`) holds the log's checkpoint and the position every publisher sent
 * through; older rows are deleted now and then, in a commit that writes a newer one.
 *
 * Added, not updated: with DuckDB alone on a quiet two-core machine, a commit of 17 rows into three
 * tables took 6.5–7.1 ms of CPU with an UPDATE of a one-row checkpoint table, 5.2–5.8 ms with a row
 * added instead (the UPDATE itself ~1 ms, and the COMMIT ~0.9 ms more after it). Before, the
 * checkpoint and a publisher's position were two UPDATEs in every commit of streamed changes under a
 * bus between processes.
 */
import type { DuckDBConnection } from '@duckdb/node-api';

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

/** Publisher positions as stored: decimal strings, as JSON has no 64-bit integers. */
function encodePositions(positions: ReadonlyMap<string, bigint>): string {
  return JSON.stringify(Object.fromEntries([...positions].map(([id, p]) => [id, p.toString()])));
}

function decodePositions(json: string): Map<string, bigint> {
  return new Map(Object.entries(JSON.parse(json) as Record<string, string>).map(([id, p]) => [id, BigInt(p)]));
}

/** The newest record (committed, or of the connection's open transaction). */
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
 * The writer's side: what the newest committed record holds, and the records it writes, each
 * carrying every publisher's position. A record is an INSERT run on DuckDB's thread (with the
 * COMMIT after it, in one round trip), not an appender's flush, which runs on the calling thread:
 * the same CPU (DuckDB alone: 2.5–2.7 ms for the record and the COMMIT either way), but the event
 * loop, which serves meanwhile, is not held.
 */
export class CommitRecords {
  /** The newest committed record's `seq`, checkpoint and publisher positions. */
  private seq = 0n;
  private lsn: bigint | null = null;
  private positions = new Map<string, bigint>();
  /** A record written in the open transaction, taken as committed by {@link committed}. */
  private pending: { seq: bigint; lsn: bigint | null; positions: Map<string, bigint> } | undefined;

  private constructor(private readonly c: DuckDBConnection) {}

  /** Opens the records of a log whose tables exist (and were migrated). */
  static async open(c: DuckDBConnection): Promise<CommitRecords> {
    const records = new CommitRecords(c);
    await records.reload();
    return records;
  }

  /** Reads the newest committed record again. */
  async reload(): Promise<void> {
    this.pending = undefined;
    const newest = await newestCommit(this.c);
    this.seq = newest?.seq ?? 0n;
    this.lsn = newest?.lsn ?? null;
    this.positions = newest?.published ?? new Map();
  }

  /** The checkpoint of the newest record, the open transaction's included. */
  get checkpoint(): bigint | null {
    return this.pending ? this.pending.lsn : this.lsn;
  }

  /** A publisher's position in the newest record, the open transaction's included. */
  published(publisher: string): bigint | null {
    return (this.pending?.positions ?? this.positions).get(publisher) ?? null;
  }

  /**
   * The statements that write a record with checkpoint `lsn` (unchanged when undefined) and
   * `published` positions over those of the newest record, to be run in the open transaction
   * (and {@link committed} once it commits). Every {@link PRUNE_EVERY} records, they also delete
   * the older ones.
   */
  record(lsn: bigint | null | undefined, published?: ReadonlyMap<string, bigint>): string {
    const base = this.pending ?? { seq: this.seq, lsn: this.lsn, positions: this.positions };
    const positions = new Map(base.positions);
    for (const [id, position] of published ?? []) positions.set(id, position);
    const record = { seq: base.seq + 1n, lsn: lsn === undefined ? base.lsn : lsn, positions };
    this.pending = record;
    // Numbers and JSON text only (a literal: several statements run at once take no parameters).
    const json = encodePositions(positions).replaceAll("'", "''");
    const insert = `INSERT INTO _commits VALUES (${record.seq}, ${record.lsn ?? 'NULL'}, now(), '${json}')`;
    return record.seq % BigInt(PRUNE_EVERY) === 0n
      ? `${insert}; DELETE FROM _commits WHERE seq < ${record.seq}`
      : insert;
  }

  /** Writes a record in the open transaction. */
  async append(lsn: bigint | null | undefined, published?: ReadonlyMap<string, bigint>): Promise<void> {
    await this.c.run(this.record(lsn, published));
  }

  /** Writes a record in a transaction of its own (none may be open). */
  async appendCommitted(lsn: bigint | null | undefined, published?: ReadonlyMap<string, bigint>): Promise<void> {
    try {
      await this.c.run(`BEGIN; ${this.record(lsn, published)}; COMMIT`);
    } catch (error) {
      await this.c.run('ROLLBACK').catch(() => undefined);
      this.rolledBack();
      throw error;
    }
    this.committed();
  }

  /** The transaction holding the written records committed. */
  committed(): void {
    if (!this.pending) return;
    ({ seq: this.seq, lsn: this.lsn, positions: this.positions } = this.pending);
    this.pending = undefined;
  }

  /** The transaction holding the written records rolled back. */
  rolledBack(): void {
    this.pending = undefined;
  }

  /** Deletes every record (in the open transaction of a reset), then writes one with no checkpoint and the publishers' positions. */
  async restart(): Promise<void> {
    await this.c.run(`DELETE FROM _commits; ${this.record(null)}`);
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
