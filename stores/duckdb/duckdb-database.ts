import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { FeatureflowError } from '../../framework/errors';

/** An open DuckDB file and one connection to it. `close()` is idempotent. */
export interface DuckDBDatabase {
  readonly path: string;
  readonly instance: DuckDBInstance;
  readonly connection: DuckDBConnection;
  close(): void;
}

/**
 * A checkpoint rewrites the table's last, partly filled row group: at DuckDB's default threshold
 * (16 MiB of WAL) the change log's bulk appends are recompressed several times over. 64 MiB cut the
 * ingest's CPU time by ~20% and did not raise its peak RSS (bench/snapshot.ts, bench/streaming.ts).
 * The writer's buffer pool is capped (`store.memoryLimit`, DuckDB's own default being 80% of RAM) so a
 * table's snapshot, one transaction, spills to the file instead of growing the process: peak RSS of a
 * 1M-row snapshot 490 MB at 64 MB, 530–600 MB at 256 MB, at the same speed (bench/snapshot.ts).
 */
const CHECKPOINT_THRESHOLD = '64MB';
/**
 * DuckDB's costly compression methods (strings, floats), left out with `store.compression: 'fast'`;
 * integer encodings (bitpacking, RLE, constant) stay. On the 1M-insert stream benchmark the
 * checkpoints' FSST, zstd and dictionary analysis took ~2 s of CPU on DuckDB's threads, enough to
 * slow the server's own decoding on two cores: 0.90–1.00× pg_recvlogical with every method, 1.09–1.17×
 * without these (bench/streaming.ts).
 */
const FAST_DISABLED = 'fsst,dict_fsst,dictionary,alp,alprd,chimp,patas,zstd';
/** Default buffer pool of a writing process. */
export const DEFAULT_MEMORY_LIMIT = '64MB';

/**
 * Opens (creating folders as needed) a DuckDB file. DuckDB allows one writing process per file; a
 * second one gets FF_STORE_LOCKED naming the file and the fix.
 */
export async function openDuckDB(
  path: string,
  options: { readOnly?: boolean; memoryLimit?: string; compression?: 'fast' | 'small' } = {},
): Promise<DuckDBDatabase> {
  if (path !== ':memory:' && !options.readOnly) mkdirSync(dirname(path), { recursive: true });
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(
      path,
      options.readOnly
        ? { access_mode: 'READ_ONLY' }
        : { checkpoint_threshold: CHECKPOINT_THRESHOLD, memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT },
    );
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    if (/lock/i.test(message)) {
      throw new FeatureflowError(
        'FF_STORE_LOCKED',
        `the DuckDB file ${path} is in use by another process (DuckDB allows one writer per file); ` +
          'stop the other featureflow process or point store.path (FEATUREFLOW_DUCKDB) at another file',
        { cause: error },
      );
    }
    throw error;
  }
  const connection = await instance.connect();
  // Not taken as an instance option (DuckDB 1.5 ignores it there): set for the whole instance.
  if (options.compression === 'fast' && !options.readOnly) await connection.run(`SET GLOBAL disabled_compression_methods = '${FAST_DISABLED}'`);
  let closed = false;
  return {
    path,
    instance,
    connection,
    close() {
      if (closed) return;
      closed = true;
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** Quotes a SQL identifier for DuckDB (and PostgreSQL): doubles embedded quotes. */
export function quoteIdent(name: string): string {
  return '"' + name.replaceAll('"', '""') + '"';
}

/** Quotes a SQL string literal: doubles embedded single quotes. */
export function quoteLiteral(text: string): string {
  return "'" + text.replaceAll("'", "''") + "'";
}
