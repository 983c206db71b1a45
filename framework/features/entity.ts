import { FeatureflowError } from '../errors.js';

/** What feature values describe (a user, an image…), identified by key columns of the source tables. */
export interface Entity {
  readonly name: string;
  /** Names of the columns that identify an entity in every source table of its views. */
  readonly keys: readonly string[];
  readonly description?: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Declares an entity.
 *
 * @example
 * export const image = entity({ name: 'image', keys: ['id'] });
 */
export function entity(definition: { name: string; keys: readonly string[]; description?: string }): Entity {
  const { name, keys } = definition;
  const problems: string[] = [];
  if (!IDENT.test(name ?? '')) problems.push(`name ${JSON.stringify(name)} must be an identifier (letters, digits, _)`);
  if (!Array.isArray(keys) || keys.length === 0) problems.push('keys must list at least one column, e.g. keys: ["id"]');
  for (const k of keys ?? [])
    if (typeof k !== 'string' || k.length === 0) problems.push(`key ${JSON.stringify(k)} must be a column name`);
  if (new Set(keys).size !== keys?.length) problems.push('keys must not repeat a column');
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_FEATURE_DEFINITION',
      `entity ${JSON.stringify(name)} is invalid: ${problems.join('; ')}`,
    );
  }
  return Object.freeze({
    name,
    keys: Object.freeze([...keys]),
    ...(definition.description ? { description: definition.description } : {}),
  });
}
