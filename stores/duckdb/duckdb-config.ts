import type { ServiceIdentifier } from 'inversify';
import { FeatureflowError } from '../../framework/errors.js';

/** The DuckDB store's settings, as `duckdb({ … })` takes them. */
export interface DuckDBConfig {
  /** Path of the DuckDB file. Default `.featureflow/featureflow.duckdb` (env `FEATUREFLOW_DUCKDB`). */
  readonly path?: string;
  /**
   * DuckDB `memory_limit` (its buffer pool; more spills to disk). Default `64MB` for the ingesting
   * process; readers (`featureflow export`, `status`, `openReader`, and the reads an ingest answers for
   * other processes) get `512MB` unless this is set, when they get this too.
   */
  readonly memoryLimit?: string;
  /**
   * How the ingest's DuckDB file is compressed (snapshot and stream tables, `_changes`, feature
   * tables). `fast` (the default) keeps DuckDB's cheap integer encodings and leaves strings and floats
   * uncompressed: the snapshot is written about twice as fast, the stream's checkpoints cost a third
   * less CPU, and the tables take about three times the space. `small` lets DuckDB choose every method.
   */
  readonly compression?: 'fast' | 'small';
  /** Most seconds opening the store may wait on the file system (a hung network mount never answers). Default 30. */
  readonly openTimeoutSeconds?: number;
}

/** The settings with every default filled in; frozen. */
export type ResolvedDuckDBConfig = Readonly<Required<DuckDBConfig>>;

/** The DuckDB store's resolved settings in the container. */
export const DUCKDB_CONFIG = Symbol.for('featureflow/duckdb/Config') as ServiceIdentifier<ResolvedDuckDBConfig>;

/** Validates the settings (every problem listed at once, with its fix) and fills defaults. */
export function resolveDuckDBConfig(
  config: DuckDBConfig = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedDuckDBConfig {
  const problems: string[] = [];
  const { memoryLimit, compression, openTimeoutSeconds } = config;
  if (memoryLimit !== undefined && !/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.test(memoryLimit)) {
    problems.push(`memoryLimit ${JSON.stringify(memoryLimit)} must be a size such as "64MB" or "1GB"`);
  }
  if (compression !== undefined && compression !== 'fast' && compression !== 'small') {
    problems.push(`compression must be "fast" or "small", got ${JSON.stringify(compression)}`);
  }
  if (
    openTimeoutSeconds !== undefined &&
    !(typeof openTimeoutSeconds === 'number' && openTimeoutSeconds > 0 && Number.isFinite(openTimeoutSeconds))
  ) {
    problems.push(`openTimeoutSeconds must be a positive number, got ${String(openTimeoutSeconds)}`);
  }
  if ('snapshotCompression' in config)
    problems.push("snapshotCompression is now compression (it covers the stream's tables too); rename it");
  if (config.path !== undefined && (typeof config.path !== 'string' || config.path.length === 0))
    problems.push('path must be a file path');
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid duckdb({ … }) store settings:\n  - ${problems.join('\n  - ')}`,
    );
  }
  return Object.freeze({
    path: config.path ?? env.FEATUREFLOW_DUCKDB ?? '.featureflow/featureflow.duckdb',
    memoryLimit: memoryLimit ?? '64MB',
    compression: compression ?? 'fast',
    openTimeoutSeconds: openTimeoutSeconds ?? 30,
  });
}
