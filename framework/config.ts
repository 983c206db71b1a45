import { FeatureflowError } from './errors.js';
import type { FeatureDefinitions } from './features/feature-registry.js';

/** featureflow's configuration, as written in `featureflow.config.ts` with {@link defineConfig}. */
export interface FeatureflowConfig {
  /** Where to read changes from. */
  source: PostgresSourceConfig;
  /** The offline store (change log, feature tables). */
  store?: DuckDBStoreConfig;
  /** Ingestion tuning. */
  ingest?: IngestConfig;
  /** Log level: `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`. Default `info` (env `FEATUREFLOW_LOG_LEVEL`). */
  logLevel?: string;
  /** Feature views and services whose history tables ingest keeps current. Default none. */
  features?: FeatureDefinitions;
}

export interface PostgresSourceConfig {
  /**
   * Connection string. Default: `DATABASE_URL`, else node-postgres reads `PGHOST`, `PGPORT`, `PGUSER`,
   * `PGPASSWORD`, `PGDATABASE` itself. Never logged.
   */
  connectionString?: string;
  /** Tables to capture, `schema.table` or `table` (schema `public`). Required, at least one. */
  tables: string[];
  /** Replication slot name. Default `featureflow`. */
  slot?: string;
  /** Publication name. Default: the slot's name (each change log needs a publication of its own). */
  publication?: string;
}

export interface DuckDBStoreConfig {
  /** Path of the DuckDB file. Default `.featureflow/featureflow.duckdb` (env `FEATUREFLOW_DUCKDB`). */
  path?: string;
  /** DuckDB `memory_limit` of the ingesting process (its buffer pool; more spills to the file). Default `64MB`. */
  memoryLimit?: string;
  /**
   * How the ingest's DuckDB file is compressed (snapshot and stream tables, `_changes`, feature
   * tables). `fast` (the default) keeps DuckDB's cheap integer encodings and leaves strings and floats
   * uncompressed: the snapshot is written about twice as fast, the stream's checkpoints cost a third
   * less CPU, and the tables take about three times the space. `small` lets DuckDB choose every method.
   */
  compression?: 'fast' | 'small';
  /** Most seconds opening the store may wait on the file system (a hung network mount never answers). Default 30. */
  openTimeoutSeconds?: number;
}

export interface IngestConfig {
  /** Most changes held in one batch before it is applied (large transactions are cut). Default 10 000. */
  batchSize?: number;
  /** Rows per COPY batch during the snapshot. Default 8 192 (four of DuckDB's 2 048-row vectors). */
  snapshotBatchSize?: number;
  /** Seconds between standby status replies and heartbeats while idle. Default 5. */
  heartbeatSeconds?: number;
  /** Most seconds between reconnect attempts after the connection drops. Default 30. */
  maxBackoffSeconds?: number;
}

/** The configuration with every default filled in; frozen. */
export interface ResolvedConfig {
  readonly source: Readonly<Required<Omit<PostgresSourceConfig, 'connectionString'>>> & { readonly connectionString?: string };
  readonly store: Readonly<Required<DuckDBStoreConfig>>;
  readonly ingest: Readonly<Required<IngestConfig>>;
  readonly logLevel: string;
  readonly features: FeatureDefinitions;
}

/** Identity function that gives `featureflow.config.ts` its types. */
export function defineConfig(config: FeatureflowConfig): FeatureflowConfig {
  return config;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/** Qualifies a table name with `public` when it has no schema. */
export function qualifyTable(name: string): string {
  return name.includes('.') ? name : `public.${name}`;
}

/**
 * Validates a configuration, fills defaults and environment overrides (explicit value, then
 * `DATABASE_URL` / `PG*` as node-postgres reads them, then defaults), and deep-freezes the result.
 */
export function resolveConfig(config: FeatureflowConfig, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const problems: string[] = [];
  const tables = config.source?.tables;
  if (!Array.isArray(tables) || tables.length === 0) {
    problems.push('source.tables must list at least one table, e.g. tables: ["public.orders"]');
  }
  const slot = config.source?.slot ?? 'featureflow';
  // Derived from the slot, so two change logs with slots of their own never share a publication.
  const publication = config.source?.publication ?? slot;
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) problems.push(`source.slot "${slot}" must be lower-case letters, digits and _ (PostgreSQL's rule for slot names)`);
  if (!IDENT.test(publication)) problems.push(`source.publication "${publication}" must be a plain identifier`);
  for (const t of tables ?? []) {
    if (typeof t !== 'string' || t.split('.').length > 2 || t.split('.').some((p) => p.length === 0)) {
      problems.push(`source.tables entry ${JSON.stringify(t)} must be "table" or "schema.table"`);
    }
  }
  const ingest = {
    batchSize: config.ingest?.batchSize ?? 10_000,
    snapshotBatchSize: config.ingest?.snapshotBatchSize ?? 8_192,
    heartbeatSeconds: config.ingest?.heartbeatSeconds ?? 5,
    maxBackoffSeconds: config.ingest?.maxBackoffSeconds ?? 30,
  };
  for (const [k, v] of Object.entries(ingest)) {
    if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) problems.push(`ingest.${k} must be a positive number, got ${String(v)}`);
  }
  const memoryLimit = config.store?.memoryLimit;
  if (memoryLimit !== undefined && !/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.test(memoryLimit)) {
    problems.push(`store.memoryLimit ${JSON.stringify(memoryLimit)} must be a size such as "64MB" or "1GB"`);
  }
  const openTimeout = config.store?.openTimeoutSeconds;
  if (openTimeout !== undefined && !(typeof openTimeout === 'number' && openTimeout > 0 && Number.isFinite(openTimeout))) {
    problems.push(`store.openTimeoutSeconds must be a positive number, got ${String(openTimeout)}`);
  }
  const compression = config.store?.compression;
  if (compression !== undefined && compression !== 'fast' && compression !== 'small') {
    problems.push(`store.compression must be "fast" or "small", got ${JSON.stringify(compression)}`);
  }
  if (config.store && 'snapshotCompression' in config.store) {
    problems.push('store.snapshotCompression is now store.compression (it covers the stream\'s tables too); rename it');
  }
  if (problems.length > 0) {
    throw new FeatureflowError('FF_CONFIG_INVALID', `invalid featureflow configuration:\n  - ${problems.join('\n  - ')}`);
  }
  const connectionString = config.source.connectionString ?? env.DATABASE_URL ?? undefined;
  const resolved: ResolvedConfig = {
    source: {
      ...(connectionString ? { connectionString } : {}),
      tables: [...new Set(tables.map(qualifyTable))],
      slot,
      publication,
    },
    store: {
      path: config.store?.path ?? env.FEATUREFLOW_DUCKDB ?? '.featureflow/featureflow.duckdb',
      memoryLimit: config.store?.memoryLimit ?? '64MB',
      compression: config.store?.compression ?? 'fast',
      openTimeoutSeconds: config.store?.openTimeoutSeconds ?? 30,
    },
    ingest,
    logLevel: config.logLevel ?? env.FEATUREFLOW_LOG_LEVEL ?? 'info',
    features: config.features ?? {},
  };
  return deepFreeze(resolved);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
