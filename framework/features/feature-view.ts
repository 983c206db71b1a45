import { qualifyTable } from '../types.js';
import { FeatureflowError } from '../errors.js';
import type { Op, Row } from '../types.js';
import type { Entity } from './entity.js';
import type { FeatureSchema, FeatureType, FeatureValues } from './feature-types.js';
import { durationMicros } from './instant.js';

/** What a transform or filter learns about the change besides the row. */
export interface TransformContext {
  /** `r` (snapshot read), `c` (insert) or `u` (update). Deletes are not transformed: they close the entity's row. */
  readonly op: Op;
  /** Qualified source table. */
  readonly table: string;
}

/** A row transform: the source row (exact values, see `Value`) → one value per declared feature. */
export type Transform<F extends FeatureSchema> = (row: Row, context: TransformContext) => FeatureValues<F>;

/** What {@link featureView} takes. */
export interface FeatureViewDefinition<F extends FeatureSchema> {
  /** Lower-case identifier; the history table is `fv_<name>_v<version>`. */
  name: string;
  /** Bump it whenever the definition changes; each version has its own table, built from the change log. */
  version: number;
  entity: Entity;
  /** Source table, `schema.table` or `table` (schema `public`); the source must capture it. */
  source: string;
  features: F;
  /**
   * Row → feature values, shared by the offline tables, backfills and the online path. Default: each
   * feature is the source column of the same name.
   */
  transform?: Transform<F>;
  /** Rows for which it returns false are not in the view (an entity whose row stops matching is closed, as by a delete). */
  filter?: (row: Row, context: TransformContext) => boolean;
  /** Feature values older than this at a spine row's time are null in training sets: seconds, or e.g. `"7d"`, `"1h30m"`. */
  ttl?: number | string;
  /** Source columns the transform and filter read. Default: found by running them once on a probe row. */
  columns?: readonly string[];
  description?: string;
}

/** A declared feature view (frozen). */
export interface FeatureView<F extends FeatureSchema = FeatureSchema> {
  readonly kind: 'featureView';
  readonly name: string;
  readonly version: number;
  readonly entity: Entity;
  /** Qualified source table. */
  readonly source: string;
  readonly features: F;
  readonly transform?: Transform<F>;
  readonly filter?: (row: Row, context: TransformContext) => boolean;
  /** The ttl in microseconds, or null. */
  readonly ttl: bigint | null;
  readonly columns?: readonly string[];
  readonly description?: string;
  /** The DuckDB history table of this version: `fv_<name>_v<version>`. */
  readonly table: string;
  /** A selection of some of this view's features, for a feature service or a training set. */
  select(...features: (keyof F & string)[]): FeatureSelection;
}

/** Some features of one view. */
export interface FeatureSelection {
  readonly view: FeatureView;
  readonly features: readonly string[];
}

/** History-table columns a feature may not be named after. */
export const RESERVED_COLUMNS = ['valid_from', 'valid_to', 'lsn', 'op', 'deleted'] as const;

const VIEW_NAME = /^[a-z][a-z0-9_]{0,62}$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The history table of a view version. */
export function historyTableName(name: string, version: number): string {
  return `fv_${name}_v${version}`;
}

/**
 * Declares a feature view: typed features of an entity, computed from the rows of one source table.
 *
 * @example
 * export const digits = featureView({
 *   name: 'digits', version: 1, entity: image, source: 'public.digits',
 *   features: { pixels: tensor('float32', [28, 28]), label: int32 },
 *   // Runs for every row: a plain loop, ~18x faster than Float32Array.from(bytes, (b) => b / 255).
 *   transform: (row) => {
 *     const bytes = row.pixels as Uint8Array;
 *     const pixels = new Float32Array(bytes.length);
 *     for (let i = 0; i < bytes.length; i++) pixels[i] = bytes[i]! / 255;
 *     return { pixels, label: row.label as number };
 *   },
 * });
 */
export function featureView<F extends FeatureSchema>(definition: FeatureViewDefinition<F>): FeatureView<F> {
  const { name, version, entity, features } = definition;
  const problems: string[] = [];
  const where = `feature view ${JSON.stringify(name)}`;
  if (!VIEW_NAME.test(name ?? ''))
    problems.push('name must be lower-case letters, digits and _, starting with a letter');
  if (!(Number.isInteger(version) && version >= 1))
    problems.push(`version must be a positive integer, got ${String(version)}`);
  if (!entity || !Array.isArray(entity.keys)) problems.push('entity must come from entity({ name, keys })');
  if (typeof definition.source !== 'string' || definition.source.length === 0)
    problems.push('source must name a table');
  const names = Object.keys(features ?? {});
  if (names.length === 0)
    problems.push('features must declare at least one feature, e.g. features: { amount: float64 }');
  for (const f of names) {
    const type = (features as Record<string, FeatureType>)[f];
    if (!IDENT.test(f)) problems.push(`feature name ${JSON.stringify(f)} must be an identifier`);
    if ((RESERVED_COLUMNS as readonly string[]).includes(f))
      problems.push(`feature ${f} clashes with a history column; rename it`);
    if (entity?.keys?.includes(f)) problems.push(`feature ${f} clashes with an entity key column; rename it`);
    if (!type || (type.kind !== 'scalar' && type.kind !== 'tensor'))
      problems.push(`feature ${f} needs a type such as float64 or tensor('float32', [28, 28])`);
  }
  if (definition.transform !== undefined && typeof definition.transform !== 'function')
    problems.push('transform must be a function');
  if (definition.filter !== undefined && typeof definition.filter !== 'function')
    problems.push('filter must be a function');
  let ttl: bigint | null = null;
  if (definition.ttl !== undefined) {
    try {
      ttl = durationMicros(definition.ttl);
    } catch (error) {
      problems.push(`ttl: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0)
    throw new FeatureflowError('FF_FEATURE_DEFINITION', `${where} is invalid: ${problems.join('; ')}`);
  const view: FeatureView<F> = {
    kind: 'featureView',
    name,
    version,
    entity,
    source: qualifyTable(definition.source),
    features: Object.freeze({ ...features }),
    ...(definition.transform ? { transform: definition.transform } : {}),
    ...(definition.filter ? { filter: definition.filter } : {}),
    ttl,
    ...(definition.columns ? { columns: Object.freeze([...definition.columns]) } : {}),
    ...(definition.description ? { description: definition.description } : {}),
    table: historyTableName(name, version),
    select(...selected) {
      for (const f of selected) {
        if (!(f in features)) {
          throw new FeatureflowError(
            'FF_FEATURE_DEFINITION',
            `${where} has no feature ${JSON.stringify(f)}; it declares ${names.join(', ')}`,
          );
        }
      }
      return Object.freeze({ view: view as unknown as FeatureView, features: Object.freeze([...selected]) });
    },
  };
  return Object.freeze(view);
}
