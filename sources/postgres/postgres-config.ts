import type { ServiceIdentifier } from 'inversify';
import { FeatureflowError } from '../../framework/errors.js';
import { qualifyTable } from '../../framework/types.js';

/** The PostgreSQL source's settings, as `postgres({ … })` takes them. */
export interface PostgresConfig {
  /**
   * Connection string. Default: `DATABASE_URL`, else node-postgres reads `PGHOST`, `PGPORT`, `PGUSER`,
   * `PGPASSWORD`, `PGDATABASE` itself. Never logged.
   */
  readonly connectionString?: string;
  /** Tables to capture, `schema.table` or `table` (schema `public`). Required, at least one. */
  readonly tables: readonly string[];
  /** Replication slot name. Default `featureflow`; each change log needs its own. */
  readonly slot?: string;
  /** Publication name. Default: the slot's name (each change log needs a publication of its own). */
  readonly publication?: string;
}

/** The settings with every default filled in; frozen. */
export interface ResolvedPostgresConfig {
  readonly connectionString?: string;
  /** Qualified, without duplicates. */
  readonly tables: readonly string[];
  readonly slot: string;
  readonly publication: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/**
 * Validates the settings (every problem listed at once, with its fix) and fills defaults: explicit
 * value, then `DATABASE_URL` as node-postgres users expect, then defaults.
 */
export function resolvePostgresConfig(
  config: PostgresConfig,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedPostgresConfig {
  const problems: string[] = [];
  const tables = config?.tables;
  if (!Array.isArray(tables) || tables.length === 0)
    problems.push('tables must list at least one table, e.g. postgres({ tables: ["public.orders"] })');
  for (const t of Array.isArray(tables) ? tables : []) {
    if (typeof t !== 'string' || t.split('.').length > 2 || t.split('.').some((p) => p.length === 0)) {
      problems.push(`tables entry ${JSON.stringify(t)} must be "table" or "schema.table"`);
    }
  }
  const slot = config?.slot ?? 'featureflow';
  // Derived from the slot, so two change logs with slots of their own never share a publication.
  const publication = config?.publication ?? slot;
  if (!/^[a-z0-9_]{1,63}$/.test(slot))
    problems.push(`slot "${slot}" must be lower-case letters, digits and _ (PostgreSQL's rule for slot names)`);
  if (!IDENT.test(publication)) problems.push(`publication "${publication}" must be a plain identifier`);
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid postgres({ … }) source settings:\n  - ${problems.join('\n  - ')}`,
    );
  }
  const connectionString = config.connectionString ?? env.DATABASE_URL ?? undefined;
  return Object.freeze({
    ...(connectionString ? { connectionString } : {}),
    tables: Object.freeze([...new Set(tables.map(qualifyTable))]),
    slot,
    publication,
  });
}

/** The PostgreSQL source's resolved settings in the container. */
export const POSTGRES_CONFIG = Symbol.for('featureflow/postgres/Config') as ServiceIdentifier<ResolvedPostgresConfig>;
