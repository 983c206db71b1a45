import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from 'pino';
import { FeatureflowError } from '../../../framework/errors.js';
import type { FeatureRowBatch } from '../../../framework/features/feature-rows.js';
import type { FeatureView } from '../../../framework/features/feature-view.js';
import { describeChanges, describeView, fingerprint } from '../../../framework/features/fingerprint.js';
import type { DeadLetter, Materializer } from '../../../framework/features/materialize.js';
import type { ColumnSchema, VersionedSchema } from '../../../framework/types.js';
import { loggedChanges } from '../change-log/logged-changes.js';
import {
  FEATURE_CATALOG_DDL,
  insertViewRecord,
  readViewRecords,
  recordTableBuilt,
  setActive,
  writeDeadLetters,
  writeTimings,
} from './feature-catalog.js';
import { checkStoredRows } from './definition-check.js';
import { checkLayout, dropHistory } from './feature-layout.js';
import { quoteLiteral } from '../duckdb-database.js';
import { HistoryWriter } from './history-writer.js';
import { yieldToEventLoop } from '../../../framework/linger.js';

/**
 * Least time between two records of the transform timings inside commits: each is a write per view,
 * which cost a commit of a few rows under a Kafka publisher 2.5 ms at p50 (10 at p99) when made at
 * every commit (bench/kafka.ts).
 */
const TIMINGS_INTERVAL_MS = 1000;

/**
 * The history tables of the configured feature view versions, kept in the change log's file: each
 * batch's feature rows are appended inside the change log's transaction, so the tables and the
 * checkpoint move together (exactly once). At open (once), the definitions are checked against the
 * catalog (a version whose definition changed without a version bump is refused: FF_FEATURE_VERSION,
 * whether its source text shows it or only a recomputed sample of its stored rows does)
 * and a version met for the first time is built from the change log (`change_log`), through the
 * same materializer as the live path.
 */
export class HistoryTables {
  private readonly writers = new Map<string, HistoryWriter>();
  /** Tables created in the open transaction (gone again if it rolls back). */
  private readonly created = new Set<string>();
  /** Per view table: the transformed rows last recorded (see recordTimings). */
  private readonly recordedRows = new Map<string, number>();
  /** When the transform timings were last recorded (ms since the epoch). */
  private timingsRecordedAt = 0;

  constructor(
    private readonly materializer: Materializer,
    private readonly logger?: Logger,
  ) {}

  private get views(): readonly FeatureView[] {
    return this.materializer.registry.views;
  }

  /**
   * Start-up work, in its own transaction, when the change log opens: catalog, fingerprints, the
   * tables of new versions built from the log. The log's schemas are handed to the materializer.
   */
  async open(c: DuckDBConnection, schemas: readonly VersionedSchema[]): Promise<void> {
    this.materializer.addSchemas(schemas);
    if (this.views.length === 0) return;
    await c.run('BEGIN');
    try {
      await c.run(FEATURE_CATALOG_DDL);
      const records = new Map((await readViewRecords(c)).map((r) => [`${r.name}@${r.version}`, r]));
      const nextVersion = (view: FeatureView) =>
        Math.max(view.version, ...[...records.values()].filter((r) => r.name === view.name).map((r) => r.version)) + 1;
      for (const view of this.views) {
        const record = records.get(`${view.name}@${view.version}`);
        const descriptor = describeView(view);
        const fp = fingerprint(descriptor);
        if (record && record.fingerprint !== fp) {
          const next = nextVersion(view);
          throw new FeatureflowError(
            'FF_FEATURE_VERSION',
            `feature view ${view.name} v${view.version} changed since its table ${record.table} was built: ` +
              `${describeChanges(record.definition, descriptor).join('; ') || 'definition changed'}. ` +
              `Bump its version to ${next} (the new version's table is built from the change log; v${view.version} stays readable), or restore the definition`,
          );
        }
        if (!record) {
          await insertViewRecord(c, {
            name: view.name,
            version: view.version,
            fingerprint: fp,
            definition: descriptor,
            table: view.table,
            source: view.source,
            active: true,
          });
        }
      }
      await setActive(c, this.views);
      for (const view of this.views) {
        const built = records.get(`${view.name}@${view.version}`)?.keyColumns != null;
        const writer = this.writerFor(view);
        if (!writer) continue;
        if (built) {
          await checkLayout(c, view.name, view.version, view.table);
          await withCheckMemory(c, () => checkStoredRows(c, view, schemas, nextVersion(view)));
          await writer.load(c);
        } else await this.build(c, view, writer);
      }
      await c.run('COMMIT');
    } catch (error) {
      await c.run('ROLLBACK');
      this.writers.clear();
      throw error;
    }
  }

  /**
   * Appends a batch's feature rows and dead letters inside the open transaction; a view whose source
   * table appears for the first time (its schema in `schemas`) gets its table now.
   */
  async apply(
    c: DuckDBConnection,
    schemas: readonly VersionedSchema[],
    batches: readonly FeatureRowBatch[],
    deadLetters: readonly DeadLetter[],
  ): Promise<void> {
    for (const schema of schemas) {
      for (const view of this.materializer.registry.viewsOf(schema.table)) {
        if (this.writers.has(view.table)) continue;
        const writer = this.writerFor(view)!;
        this.created.add(view.table);
        await writer.create(c);
        await writer.load(c);
        await recordTableBuilt(c, view.name, view.version, writer.keyColumns, 0);
      }
    }
    for (const { view, rows } of batches) {
      const writer = this.writers.get(view.table);
      if (!writer)
        throw new Error(`no schema of ${view.source} is known, yet the batch has feature rows of ${view.name}`);
      await writer.write(c, rows);
    }
    await writeDeadLetters(c, deadLetters);
    if (deadLetters.length > 0)
      this.logger?.warn({ deadLetters: deadLetters.length }, 'feature views rejected rows; see _feature_dead_letters');
  }

  /**
   * Records the materializer's time per transformed row for `status` (another process): a small
   * write per view that transformed rows since the last record. Inside a commit at most once per
   * {@link TIMINGS_INTERVAL_MS}, and when the log stops writing ({@link release}).
   */
  private async recordTimings(c: DuckDBConnection): Promise<void> {
    this.timingsRecordedAt = Date.now();
    const timings = this.materializer.transformTimings();
    const changed = this.views.flatMap((v) => {
      const t = timings.get(v.table);
      if (!t || t.rows === this.recordedRows.get(v.table)) return [];
      this.recordedRows.set(v.table, t.rows);
      return [{ name: v.name, version: v.version, rows: t.rows, ms: t.ms }];
    });
    await writeTimings(c, changed);
  }

  /** Forgets every row (the change log restarted from a new snapshot); inside its transaction. */
  async reset(c: DuckDBConnection): Promise<void> {
    for (const view of this.views) {
      await this.writers.get(view.table)?.clear(c);
      await c.run('DELETE FROM _feature_dead_letters WHERE view = $1 AND version = $2', [view.name, view.version]);
    }
  }

  /**
   * Writes what the writers hold, and the transform timings when due (see recordTimings), into the
   * open transaction; before it commits.
   */
  async flush(c: DuckDBConnection, keepThreadFree = true): Promise<void> {
    for (const writer of this.writers.values()) {
      // Each write's data chunks are filled on this thread: while serving, let what arrived meanwhile run first.
      if (keepThreadFree) await yieldToEventLoop();
      await writer.flush(c, keepThreadFree);
    }
    if (Date.now() - this.timingsRecordedAt >= TIMINGS_INTERVAL_MS) await this.recordTimings(c);
  }

  /** The open transaction committed. */
  committed(): void {
    this.created.clear();
  }

  /**
   * The open transaction rolled back: tables it created are gone. What the other writers know of
   * their tables may now over-estimate them (seq, newest valid_from), which is safe.
   */
  rolledBack(): void {
    for (const writer of this.writers.values()) writer.discard();
    for (const table of this.created) this.writers.delete(table);
    this.created.clear();
  }

  /** The log stops writing (or closes), outside a transaction: records the transform timings not recorded yet. */
  async release(c: DuckDBConnection): Promise<void> {
    try {
      await this.recordTimings(c);
    } catch (error) {
      // Only `status`'s figure: what stopped the log (if anything) is what matters.
      this.logger?.warn({ err: error }, 'the transform timings could not be recorded');
    }
  }

  /** The writer of a view's table, made once its source's schema is known (the key columns' types come from it). */
  private writerFor(view: FeatureView): HistoryWriter | undefined {
    const known = this.writers.get(view.table);
    if (known) return known;
    const schema = this.materializer.latestSchema(view.source);
    if (!schema) return undefined;
    const columns = new Map(schema.columns.map((c) => [c.name, c]));
    const keys = view.entity.keys.map((k) => columns.get(k)).filter((c): c is ColumnSchema => c !== undefined);
    const uniqueReads = schema.keyColumns.length > 0 && schema.keyColumns.every((k) => view.entity.keys.includes(k));
    const writer = new HistoryWriter(view, keys, uniqueReads);
    this.writers.set(view.table, writer);
    return writer;
  }

  /** Creates a new version's table and fills it from everything in the change log. */
  private async build(c: DuckDBConnection, view: FeatureView, writer: HistoryWriter): Promise<void> {
    const started = Date.now();
    await dropHistory(c, view.table);
    await writer.create(c);
    await writer.load(c);
    let replayed = 0;
    const deadLetters: DeadLetter[] = [];
    const columnsOf = (table: string, version: number) => this.materializer.schemaOf(table, version)?.columns ?? [];
    for await (const changes of loggedChanges(c, { tables: [view.source], columnsOf })) {
      const made = this.materializer.materializeChanges(changes, [view]);
      for (const batch of made.batches) await writer.write(c, batch.rows);
      deadLetters.push(...made.deadLetters);
      if (deadLetters.length >= 10_000) await writeDeadLetters(c, deadLetters.splice(0));
      replayed += changes.length;
    }
    await writer.flush(c);
    await writeDeadLetters(c, deadLetters);
    await recordTableBuilt(c, view.name, view.version, writer.keyColumns, replayed);
    if (replayed > 0) {
      this.logger?.info(
        { view: view.name, version: view.version, changes: replayed, ms: Date.now() - started },
        'feature view version built from the change log',
      );
    }
  }
}

/** DuckDB memory the stored-rows check may use, at least, MiB: a vector of 784-float tensors alone is 6 MiB. */
const CHECK_MEMORY_MIB = 256;

/**
 * Runs `check` with DuckDB's memory limit raised to at least {@link CHECK_MEMORY_MIB} (the ingest's
 * default is 64MB, and nothing else runs while the log opens), then puts the limit back.
 */
async function withCheckMemory<T>(c: DuckDBConnection, check: () => Promise<T>): Promise<T> {
  const current = String((await c.runAndReadAll(`SELECT current_setting('memory_limit')`)).getRows()[0]![0]);
  if (mebibytes(current) >= CHECK_MEMORY_MIB) return check();
  await c.run(`SET GLOBAL memory_limit = '${CHECK_MEMORY_MIB}MiB'`);
  try {
    return await check();
  } finally {
    await c.run(`SET GLOBAL memory_limit = ${quoteLiteral(current)}`);
  }
}

/** A DuckDB size setting as it reads it back (`61.0 MiB`, `1.5 GiB`), in MiB; 0 when unreadable. */
function mebibytes(setting: string): number {
  const m = /^([\d.]+)\s*(bytes|KiB|MiB|GiB|TiB|KB|MB|GB|TB)$/i.exec(setting.trim());
  if (!m) return 0;
  const units: Record<string, number> = {
    bytes: 2 ** -20,
    kib: 2 ** -10,
    kb: 1e3 / 2 ** 20,
    mib: 1,
    mb: 1e6 / 2 ** 20,
    gib: 1024,
    gb: 1e9 / 2 ** 20,
    tib: 2 ** 20,
    tb: 1e12 / 2 ** 20,
  };
  return Number(m[1]) * (units[m[2]!.toLowerCase()] ?? 0);
}
