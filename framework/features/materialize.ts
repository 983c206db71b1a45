import { changesOf } from '../changes-of.js';
import { FeatureflowError } from '../errors.js';
import type { Change, ChangeBatch, Value, VersionedSchema } from '../types.js';
import { encodeRow } from '../value-json.js';
import { compileView, entityKey, FeatureRowError, type CompiledView } from './compiled-view.js';
import { entityId } from './entity-key.js';
import type { FeatureRegistry } from './feature-registry.js';
import type { FeatureRow, FeatureRowBatch } from './feature-rows.js';
import type { StoredFeatureValue } from './feature-values.js';
import type { FeatureView } from './feature-view.js';

/** A change a view could not turn into features: kept by the offline store with the error. */
export interface DeadLetter {
  readonly view: string;
  readonly version: number;
  readonly table: string;
  readonly op: string;
  readonly position: bigint;
  readonly commitTime: bigint;
  readonly key: string | null;
  readonly row: string | null;
  readonly error: string;
}

/** What the views made of a batch: feature rows per view version, and the changes they rejected. */
export interface Materialized {
  readonly batches: readonly FeatureRowBatch[];
  readonly deadLetters: readonly DeadLetter[];
}

/** How long a view version's transform and filter took, over the rows this materializer ran them on. */
export interface TransformTiming {
  /** Rows transformed (inserts, updates and reads; deletes and truncates run no transform). */
  readonly rows: number;
  /** Time spent turning those changes into feature rows, in milliseconds. */
  readonly ms: number;
}

/** Nothing: a batch of tables no view reads. */
export const NOTHING: Materialized = Object.freeze({ batches: [], deadLetters: [] });

/**
 * Turns changes into feature rows: each view version's transform and filter applied to the rows of
 * its source table, one feature row per change (a delete, a filtered-out row or a key moving away
 * closes the entity; a truncate clears the view). Pure: the same changes give the same rows, whoever
 * asks (the live ingest, a rebuild from the change log, the online path).
 */
export class Materializer {
  private readonly schemas = new Map<string, VersionedSchema>();
  private readonly latest = new Map<string, VersionedSchema>();
  private readonly compiled = new Map<string, CompiledView>();
  private readonly sources: ReadonlySet<string>;
  /** Per view table: rows transformed and milliseconds spent, since this materializer was made. */
  private readonly timings = new Map<string, { rows: number; ms: number }>();

  constructor(readonly registry: FeatureRegistry) {
    this.sources = new Set(registry.views.map((v) => v.source));
  }

  /** True when some view is defined (else every batch materializes to nothing). */
  get active(): boolean {
    return this.registry.views.length > 0;
  }

  /** The schema of a table version, once added. */
  schemaOf(table: string, version: number): VersionedSchema | undefined {
    return this.schemas.get(`${table}#${version}`);
  }

  /** The newest schema of a table, once added. */
  latestSchema(table: string): VersionedSchema | undefined {
    return this.latest.get(table);
  }

  /**
   * Adds schemas of source tables (stored ones at start, new ones with each batch). Each view is
   * checked against its table's newest schema at once: FF_FEATURE_DEFINITION before any row.
   */
  addSchemas(schemas: readonly VersionedSchema[]): void {
    const tables = new Set<string>();
    for (const schema of schemas) {
      this.schemas.set(`${schema.table}#${schema.version}`, schema);
      const known = this.latest.get(schema.table);
      if (!known || known.version <= schema.version) this.latest.set(schema.table, schema);
      for (const view of this.registry.viewsOf(schema.table)) this.compiled.delete(`${view.table}#${schema.version}`);
      tables.add(schema.table);
    }
    // Checked once every schema is in: the stored ones come oldest first, and a view reading a column
    // added later must not be checked against an older schema as if it were the newest.
    for (const table of tables) {
      const latest = this.latest.get(table)!;
      for (const view of this.registry.viewsOf(table)) this.compiledFor(view, latest.version);
    }
  }

  /** The feature rows of every view version for a batch's changes, and the rows they rejected. */
  materialize(batch: ChangeBatch): Materialized {
    if (!this.active) return NOTHING;
    const changes = changesOf(batch, (t, v) => this.schemaOf(t, v), this.sources);
    return changes.length === 0 ? NOTHING : this.materializeChanges(changes);
  }

  /** The feature rows of every view version for changes in commit order (of any tables). */
  materializeChanges(changes: readonly Change[], only?: readonly FeatureView[]): Materialized {
    const bySource = new Map<string, Change[]>();
    for (const change of changes) {
      let list = bySource.get(change.table);
      if (!list) bySource.set(change.table, (list = []));
      list.push(change);
    }
    const batches: FeatureRowBatch[] = [];
    const deadLetters: DeadLetter[] = [];
    for (const view of only ?? this.registry.views) {
      const of = bySource.get(view.source);
      if (!of) continue;
      // Timed per batch, not per row: performance.now() around each transform call would cost more
      // than a small transform.
      const started = performance.now();
      const rows = this.rowsOf(view, of, deadLetters);
      const timing = this.timings.get(view.table) ?? { rows: 0, ms: 0 };
      timing.ms += performance.now() - started;
      timing.rows += this.transformed;
      this.timings.set(view.table, timing);
      if (rows.length > 0) batches.push({ view, rows });
    }
    return { batches, deadLetters };
  }

  /**
   * Rows transformed and milliseconds spent per view version (by its table) since this materializer
   * was made: what `featureflow status` shows as a view's time per row.
   */
  transformTimings(): ReadonlyMap<string, TransformTiming> {
    return this.timings;
  }

  /** Rows the last {@link rowsOf} ran the transform on. */
  private transformed = 0;

  private rowsOf(view: FeatureView, changes: readonly Change[], deadLetters: DeadLetter[]): FeatureRow[] {
    const rows: FeatureRow[] = [];
    this.transformed = 0;
    // The compiled view per schema version, looked up once per run of changes rather than per change.
    let compiledVersion = -1;
    let compiled: CompiledView | null = null;
    const push = (change: Change, key: readonly Value[], values: readonly StoredFeatureValue[] | null) =>
      rows.push({
        op: change.op,
        key,
        values,
        position: change.position,
        commitPosition: change.commitPosition,
        commitTime: change.commitTime,
      });
    for (const change of changes) {
      if (change.op === 't') {
        push(change, [], null);
        continue;
      }
      if (change.op === 'd') {
        const key = entityKey(view, change.before ?? change.key);
        if (typeof key === 'string')
          deadLetters.push(deadLetter(view, change, `delete cannot be mapped to an entity: ${key}`));
        else push(change, key, null);
        continue;
      }
      const key = entityKey(view, change.after);
      if (typeof key === 'string') {
        deadLetters.push(deadLetter(view, change, `row has no entity key: ${key}`));
        continue;
      }
      if (change.op === 'u' && change.before) {
        // A key update moves the row: the old entity is gone.
        const old = entityKey(view, change.before);
        if (typeof old !== 'string' && entityId(old) !== entityId(key)) push(change, old, null);
      }
      let values: StoredFeatureValue[] | null;
      try {
        if (change.schemaVersion !== compiledVersion || compiled === null) {
          compiled = this.compiledFor(view, change.schemaVersion);
          compiledVersion = change.schemaVersion;
        }
        this.transformed++;
        values = compiled.evaluate(change.after!, { op: change.op, table: change.table });
      } catch (error) {
        if (!(error instanceof FeatureRowError)) throw error;
        deadLetters.push(deadLetter(view, change, error.message));
        continue;
      }
      push(change, key, values);
    }
    return rows;
  }

  /**
   * The view compiled for a schema version of its source. The newest schema must fit the view (else
   * FF_FEATURE_DEFINITION stops ingest); rows of an older schema that does not fit are dead letters.
   */
  private compiledFor(view: FeatureView, version: number): CompiledView {
    const id = `${view.table}#${version}`;
    let compiled = this.compiled.get(id);
    if (compiled) return compiled;
    const schema = this.schemaOf(view.source, version);
    if (!schema) throw new Error(`schema version ${version} of ${view.source} is unknown`);
    try {
      compiled = compileView(view, schema);
    } catch (error) {
      if (version === this.latest.get(view.source)?.version || !(error instanceof FeatureflowError)) throw error;
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

function deadLetter(view: FeatureView, change: Change, error: string): DeadLetter {
  const row = change.after ?? change.before;
  return {
    view: view.name,
    version: view.version,
    table: change.table,
    op: change.op,
    position: change.position,
    commitTime: change.commitTime,
    key: change.key === null ? null : encodeRow(change.key),
    row: row === null ? null : encodeRow(row),
    error,
  };
}
