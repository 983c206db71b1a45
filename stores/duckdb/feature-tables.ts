import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from 'pino';
import { FeatureflowError } from '../../framework/errors.js';
import { compileView, FeatureRowError, type CompiledView } from '../../framework/features/compiled-view.js';
import { FeatureRegistry, type FeatureDefinitions } from '../../framework/features/feature-registry.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import { describeChanges, describeView, fingerprint } from '../../framework/features/fingerprint.js';
import type { ChangeConsumer } from '../../framework/interfaces/index.js';
import { batchLength, type Change, type ChangeBatch, type ColumnSchema, type Op, type TableSchema } from '../../framework/types.js';
import { decodeRow } from '../../framework/value-json.js';
import {
  FEATURE_CATALOG_DDL,
  insertViewRecord,
  readViewRecords,
  recordTableBuilt,
  setActive,
  writeDeadLetters,
  type ViewRecord,
} from './feature-catalog.js';
import { checkLayout, dropHistory } from './feature-layout.js';
import { FeatureViewWriter, type DeadLetter } from './feature-view-writer.js';

type VersionedSchema = TableSchema & { version: number };

/** Changes read per page when a new view version is built from the change log. */
const REBUILD_PAGE = 10_000;

/** Options of {@link FeatureTables}. */
export interface FeatureTablesOptions {
  readonly logger?: Logger;
  /** The captured tables (qualified); a view reading another table is refused up front. */
  readonly capturedTables?: readonly string[];
}

/**
 * Keeps one history table per configured feature view version current, as a consumer of the DuckDB
 * change log: each batch's changes are applied inside the change log's transaction, so the tables
 * and the checkpoint move together (exactly once). A version met for the first time gets its table
 * built from the change log (`change_log`), with the same code as the live path; a version whose
 * definition changed without a version bump is refused (FF_FEATURE_VERSION).
 */
export class FeatureTables implements ChangeConsumer<DuckDBConnection> {
  readonly registry: FeatureRegistry;
  private readonly schemas = new Map<string, VersionedSchema>();
  private readonly latestSchema = new Map<string, VersionedSchema>();
  private schemasLoaded = false;
  private readonly compiled = new Map<string, CompiledView>();
  private readonly writers = new Map<string, FeatureViewWriter>();
  /** The store matched the definitions at the last committed batch: ensure() may skip its checks. */
  private ready = false;

  constructor(
    definitions: FeatureDefinitions | FeatureRegistry,
    private readonly options: FeatureTablesOptions = {},
  ) {
    this.registry = definitions instanceof FeatureRegistry ? definitions : new FeatureRegistry(definitions);
    const captured = options.capturedTables;
    for (const view of this.registry.views) {
      if (captured && !captured.includes(view.source)) {
        throw new FeatureflowError(
          'FF_FEATURE_DEFINITION',
          `feature view ${view.name} v${view.version} reads ${view.source}, which is not captured (source.tables: ${captured.join(', ')}); add it to source.tables`,
        );
      }
    }
  }

  /**
   * Checks the definitions against the store and builds the tables of new versions from the change
   * log, in its own transaction. Call when no batch transaction is open (e.g. right after the change
   * log opened); {@link apply} does the same on its first batch otherwise.
   */
  async open(c: DuckDBConnection): Promise<void> {
    await c.run('BEGIN');
    try {
      await this.ensure(c, null);
      await c.run('COMMIT');
      this.ready = true;
    } catch (error) {
      await c.run('ROLLBACK');
      throw error;
    }
  }

  async apply(c: DuckDBConnection, batch: ChangeBatch): Promise<void> {
    await this.ensure(c, batch);
    const deadLetters: DeadLetter[] = [];
    const bySource = new Map<string, Change[]>();
    for (const change of batch.changes) {
      let list = bySource.get(change.table);
      if (!list) bySource.set(change.table, (list = []));
      list.push(change);
    }
    for (const view of this.registry.views) {
      const changes = bySource.get(view.source);
      if (!changes) continue;
      const writer = this.writers.get(view.table);
      if (!writer) throw new Error(`no schema of ${view.source} is known, yet the batch has changes of it`);
      await writer.write(c, changes, deadLetters);
    }
    await writeDeadLetters(c, deadLetters);
    if (deadLetters.length > 0) {
      this.options.logger?.warn({ deadLetters: deadLetters.length }, 'feature views rejected rows; see _feature_dead_letters');
    }
    // What ensure() made is committed with this batch; until then a rollback may undo it.
    if (batch.complete) this.ready = true;
  }

  async reset(c: DuckDBConnection): Promise<void> {
    this.schemas.clear();
    this.latestSchema.clear();
    this.compiled.clear();
    this.schemasLoaded = false;
    this.ready = false;
    await this.ensure(c, null);
    for (const view of this.registry.views) {
      const writer = this.writers.get(view.table);
      if (writer) await writer.clear(c);
      await c.run('DELETE FROM _feature_dead_letters WHERE view = $1 AND version = $2', [view.name, view.version]);
    }
  }

  /** Makes the store match the definitions: catalog, fingerprints, tables, schemas (idempotent, cheap when nothing is new). */
  private async ensure(c: DuckDBConnection, batch: ChangeBatch | null): Promise<void> {
    if (this.ready && batch !== null && batch.schemas.length === 0) return;
    this.ready = false;
    await c.run(FEATURE_CATALOG_DDL);
    if (!this.schemasLoaded) {
      const rows = (await c.runAndReadAll('SELECT table_name, version, columns, key_columns FROM _schemas ORDER BY version')).getRows() as [string, number, string, string][];
      for (const [table, version, columns, keyColumns] of rows) {
        this.addSchema({ table, version, columns: JSON.parse(columns) as ColumnSchema[], keyColumns: JSON.parse(keyColumns) as string[] });
      }
      this.schemasLoaded = true;
    }
    for (const schema of batch?.schemas ?? []) {
      this.addSchema(schema);
      // A new schema of a source table: check every view of it now, before any row.
      for (const view of this.registry.viewsOf(schema.table)) this.compiledFor(view, schema.version);
    }

    const records = new Map((await readViewRecords(c)).map((r) => [`${r.name}@${r.version}`, r]));
    for (const view of this.registry.views) {
      const record = records.get(`${view.name}@${view.version}`);
      const descriptor = describeView(view);
      const fp = fingerprint(descriptor);
      if (record && record.fingerprint !== fp) {
        const next = Math.max(...[...records.values()].filter((r) => r.name === view.name).map((r) => r.version)) + 1;
        throw new FeatureflowError(
          'FF_FEATURE_VERSION',
          `feature view ${view.name} v${view.version} changed since its table ${record.table} was built: ` +
            `${describeChanges(record.definition, descriptor).join('; ') || 'definition changed'}. ` +
            `Bump its version to ${next} (the new version's table is built from the change log; v${view.version} stays readable), or restore the definition`,
        );
      }
      if (!record) {
        await insertViewRecord(c, { name: view.name, version: view.version, fingerprint: fp, definition: descriptor, table: view.table, source: view.source, active: true });
      }
    }
    await setActive(c, this.registry.views);

    for (const view of this.registry.views) {
      const record = records.get(`${view.name}@${view.version}`);
      const built = record?.keyColumns != null;
      if (built && this.writers.has(view.table)) continue;
      const schema = this.latestSchema.get(view.source);
      if (!schema) {
        this.writers.delete(view.table);
        continue;
      }
      this.compiledFor(view, schema.version);
      const writer = new FeatureViewWriter(view, schema, (version) => this.compiledFor(view, version));
      if (built) {
        await checkLayout(c, view.name, view.version, view.table);
        await writer.load(c);
      } else {
        await this.build(c, view, writer, record, batch);
      }
      this.writers.set(view.table, writer);
    }
  }

  /** Creates a new version's table and fills it from the change log (everything logged before `batch`). */
  private async build(c: DuckDBConnection, view: FeatureView, writer: FeatureViewWriter, _record: ViewRecord | undefined, batch: ChangeBatch | null): Promise<void> {
    const started = Date.now();
    await dropHistory(c, view.table);
    await writer.create(c);
    await writer.load(c);
    const maxSeq = BigInt(((await c.runAndReadAll('SELECT coalesce(max(seq), 0) FROM change_log')).getRows()[0]![0] as bigint) ?? 0n);
    const upTo = maxSeq - BigInt(batch ? batchLength(batch) : 0);
    let replayed = 0;
    const deadLetters: DeadLetter[] = [];
    // In windows of seq rather than LIMIT pages: the snapshot's rows get their seq in the view.
    for (let after = 0n; after < upTo; after += BigInt(REBUILD_PAGE)) {
      const rows = (
        await c.runAndReadAll(
          `SELECT seq, op, key, before, after, lsn, commit_lsn, epoch_us(commit_time), xid, schema_version FROM change_log
            WHERE table_name = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
          [view.source, after, after + BigInt(REBUILD_PAGE) < upTo ? after + BigInt(REBUILD_PAGE) : upTo],
        )
      ).getRows() as [bigint, string, string | null, string | null, string | null, bigint, bigint, bigint, bigint, number][];
      if (rows.length === 0) continue;
      const changes: Change[] = rows.map(([, op, key, before, afterRow, lsn, commitLsn, time, xid, version]) => {
        const columns = this.schemas.get(`${view.source}#${version}`)?.columns ?? [];
        return {
          table: view.source,
          op: op as Op,
          key: key === null ? null : decodeRow(key, columns),
          before: before === null ? null : decodeRow(before, columns),
          after: afterRow === null ? null : decodeRow(afterRow, columns),
          lsn: BigInt(lsn),
          commitLsn: BigInt(commitLsn),
          commitTime: BigInt(time),
          xid: Number(xid),
          schemaVersion: version,
        };
      });
      await writer.write(c, changes, deadLetters);
      if (deadLetters.length >= REBUILD_PAGE) await writeDeadLetters(c, deadLetters.splice(0));
      replayed += rows.length;
    }
    await writeDeadLetters(c, deadLetters);
    await recordTableBuilt(c, view.name, view.version, writer.keyColumns, replayed);
    if (replayed > 0) {
      this.options.logger?.info({ view: view.name, version: view.version, changes: replayed, ms: Date.now() - started }, 'feature view version built from the change log');
    }
  }

  private addSchema(schema: VersionedSchema): void {
    this.schemas.set(`${schema.table}#${schema.version}`, schema);
    const latest = this.latestSchema.get(schema.table);
    if (!latest || latest.version <= schema.version) this.latestSchema.set(schema.table, schema);
    for (const key of [...this.compiled.keys()]) if (key.endsWith(`#${schema.table}#${schema.version}`)) this.compiled.delete(key);
  }

  /**
   * The view compiled for a schema version of its source. The newest schema must fit the view (else
   * FF_FEATURE_DEFINITION stops ingest); rows of an older schema that does not fit are dead letters.
   */
  private compiledFor(view: FeatureView, version: number): CompiledView {
    const id = `${view.table}#${view.source}#${version}`;
    let compiled = this.compiled.get(id);
    if (compiled) return compiled;
    const schema = this.schemas.get(`${view.source}#${version}`);
    if (!schema) throw new Error(`schema version ${version} of ${view.source} is unknown`);
    try {
      compiled = compileView(view, schema);
    } catch (error) {
      if (version === this.latestSchema.get(view.source)?.version || !(error instanceof FeatureflowError)) throw error;
      const message = `row of an older schema of ${view.source} (version ${version}): ${error.message}`;
      compiled = {
        view,
        schema,
        featureNames: Object.keys(view.features),
        featureTypes: Object.values(view.features),
        columnsRead: [],
        evaluate() {
          throw new FeatureRowError(message);
        },
      };
    }
    this.compiled.set(id, compiled);
    return compiled;
  }
}
