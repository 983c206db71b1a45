import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { FeatureflowError } from '../../framework/errors.js';
import { translateOpenError } from './duckdb-errors.js';
import { registerStagedRows } from './staged-insert.js';

/** An open DuckDB file and one connection to it. `close()` is idempotent. */
export interface DuckDBDatabase {
  readonly path: string;
  readonly connection: DuckDBConnection;
  /**
   * Another connection to the store's file. (A writer's instance holds the file as an attached
   * database, which this makes each connection's default: the instance's own is an empty in-memory one.)
   */
  connect(): Promise<DuckDBConnection>;
  close(): void;
}

/**
 * A checkpoint rewrites the table's last, partly filled row group: at DuckDB's default threshold
 * (16 MiB of WAL) the change log's bulk appends are recompressed several times over. 64 MiB cut the
 * ingest's CPU time by ~20% and did not raise its peak RSS (bench/snapshot.ts, bench/streaming.ts).
 * The writer's buffer pool is capped (`duckdb({ memoryLimit })`, DuckDB's own default being 80% of RAM) so a
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
/**
 * Rows per row group of a writer's file, against DuckDB's 122,880. A checkpoint rewrites the last,
 * partly filled row group of every table it writes to; for a tensor feature (784 floats, 3 kB a row)
 * that was up to 385 MB, rewritten at every checkpoint. Streaming 100k 784-byte images (100-row
 * transactions) with the digits view: 4.1–4.2 s against 9.0–9.2 s at DuckDB's size (7.0 s at 16,384).
 * The cost is in reads of many rows, ~10% slower: an Arrow export of 1M current rows 1.01M rows/s
 * against 1.17M, a 1M × 1M training set 0.57 s against 0.51 (bench/images.ts, bench/features-*.ts).
 */
export const ROW_GROUP_SIZE = 4096;
/** The name a writer's file is attached under, made the default of each of its connections. */
const STORE_CATALOG = 'featureflow_store';
/** Default buffer pool of a writing process. */
export const DEFAULT_MEMORY_LIMIT = '64MB';
/**
 * Default buffer pool of a process that only reads (exports, training sets, `status`). Unbounded, a
 * read-only DuckDB takes 80% of the machine's memory: a Parquet export of 300k images peaked at 4.5 GB.
 * 256 MB was too little for the latest values of 100k digit images (their window and sort ran out).
 */
export const READER_MEMORY_LIMIT = '512MB';
/** Default bound on the file-system calls of opening the store (a hung network mount never answers). */
export const DEFAULT_OPEN_TIMEOUT_SECONDS = 30;

/** Options of {@link openDuckDB}. */
export interface OpenOptions {
  readonly readOnly?: boolean;
  /** DuckDB `memory_limit`. Default {@link DEFAULT_MEMORY_LIMIT}, read-only {@link READER_MEMORY_LIMIT}. */
  readonly memoryLimit?: string;
  readonly compression?: 'fast' | 'small';
  /** Most seconds the file-system calls of opening may take. Default {@link DEFAULT_OPEN_TIMEOUT_SECONDS}. */
  readonly openTimeoutSeconds?: number;
}

/**
 * Opens (creating folders as needed) a DuckDB file. DuckDB allows one writing process per file; a
 * second one gets FF_STORE_LOCKED naming the file and the fix. A path that cannot hold the store (a
 * folder, a file that is not DuckDB's, a folder that cannot be made) is refused with FF_STORE_PATH
 * before DuckDB touches it, and every file-system call is bounded (FF_STORE_TIMEOUT): the event loop
 * stays free meanwhile, so Ctrl-C works.
 */
export async function openDuckDB(path: string, options: OpenOptions = {}): Promise<DuckDBDatabase> {
  const seconds = options.openTimeoutSeconds ?? DEFAULT_OPEN_TIMEOUT_SECONDS;
  const bounded = <T>(what: string, work: Promise<T>) => withTimeout(work, seconds, path, what);
  if (path !== ':memory:') await checkStorePath(path, options.readOnly ?? false, bounded);
  let instance: DuckDBInstance;
  // A writer attaches its file to an in-memory instance: the row group size is an option of ATTACH only.
  const attach = !options.readOnly && path !== ':memory:';
  try {
    instance = await bounded(
      'DuckDB opening the file',
      DuckDBInstance.create(
        attach ? ':memory:' : path,
        options.readOnly
          ? { access_mode: 'READ_ONLY', memory_limit: options.memoryLimit ?? READER_MEMORY_LIMIT }
          : { checkpoint_threshold: CHECKPOINT_THRESHOLD, memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT },
      ),
    );
    if (attach) {
      const c = await instance.connect();
      try {
        await bounded(
          'DuckDB opening the file',
          c.run(`ATTACH ${quoteLiteral(path)} AS ${STORE_CATALOG} (ROW_GROUP_SIZE ${ROW_GROUP_SIZE})`),
        );
      } catch (error) {
        // After a timeout the ATTACH is left behind, still holding the instance.
        if (!(error instanceof FeatureflowError)) {
          c.closeSync();
          instance.closeSync();
        }
        throw error;
      }
      c.closeSync();
    }
  } catch (error) {
    throw translateOpenError(error, path);
  }
  const connect = async (): Promise<DuckDBConnection> => {
    const c = await instance.connect();
    if (attach) await c.run(`USE ${STORE_CATALOG}`);
    return c;
  };
  const connection = await connect();
  // Not taken as an instance option (DuckDB 1.5 ignores it there): set for the whole instance.
  if (options.compression === 'fast' && !options.readOnly)
    await connection.run(`SET GLOBAL disabled_compression_methods = '${FAST_DISABLED}'`);
  if (!options.readOnly) registerStagedRows(connection);
  let closed = false;
  return {
    path,
    connection,
    connect,
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

type Bounded = <T>(what: string, work: Promise<T>) => Promise<T>;

/** Resolves as `work` does, or fails with FF_STORE_TIMEOUT after `seconds` (the work itself is left behind). */
function withTimeout<T>(work: Promise<T>, seconds: number, path: string, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new FeatureflowError(
            'FF_STORE_TIMEOUT',
            `${what} for the store ${path} did not finish within ${seconds} s: the file system there does not answer ` +
              '(a hung network or FUSE mount?); check the mount, or point duckdb({ path }) (FEATUREFLOW_DUCKDB) at a local disk',
          ),
        ),
      seconds * 1000,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** What {@link PROBE} found at a store path. */
interface Probe {
  readonly kind?: 'dir' | 'file' | 'other';
  readonly size?: number;
  readonly duckdb?: boolean;
  readonly statError?: string;
  readonly mkdirError?: string;
}

/**
 * Looks at the store path (and makes its folder, with `create`) in a child process: a file-system
 * call that never returns (a hung mount) would hold one of libuv's threads, and Node joins those
 * threads when it exits, so the process could never end. A child can be killed.
 */
const PROBE = `
const fs = require('node:fs');
const [p, create] = process.argv.slice(1);
const out = {};
try {
  const st = fs.statSync(p);
  out.kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  out.size = st.size;
  if (out.kind === 'file' && st.size > 0) {
    const fd = fs.openSync(p, 'r');
    const head = Buffer.alloc(12);
    const n = fs.readSync(fd, head, 0, 12, 0);
    fs.closeSync(fd);
    out.duckdb = n === 12 && head.toString('latin1', 8, 12) === 'DUCK';
  }
} catch (error) {
  out.statError = error.code;
  if (error.code === 'ENOENT' && create === 'create') {
    try { fs.mkdirSync(require('node:path').dirname(p), { recursive: true }); } catch (e) { out.mkdirError = e.code; }
  }
}
process.stdout.write(JSON.stringify(out));
`;

async function probe(path: string, create: boolean, bounded: Bounded): Promise<Probe> {
  let proc: ReturnType<typeof execFile> | undefined;
  const child = new Promise<Probe>((resolve, reject) => {
    proc = execFile(process.execPath, ['-e', PROBE, path, create ? 'create' : ''], (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as Probe);
    });
  });
  try {
    return await bounded(create ? 'creating the store folder' : 'reading the store path', child);
  } finally {
    // A child still waiting on the file system when the bound passed is killed with its wait.
    if (proc?.exitCode === null) proc.kill('SIGKILL');
  }
}

/** Refuses a store path that cannot hold a DuckDB file, and makes its folder (unless read-only). */
async function checkStorePath(path: string, readOnly: boolean, bounded: Bounded): Promise<void> {
  const refuse = (what: string, fix: string) =>
    new FeatureflowError('FF_STORE_PATH', `the store path ${path} ${what}; ${fix}`);
  const found = await probe(path, !readOnly, bounded);
  const elsewhere = 'point duckdb({ path }) (FEATUREFLOW_DUCKDB) at a path in a folder';
  if (found.statError === 'ENOTDIR') throw refuse('is under a file, not a folder', elsewhere);
  if (found.statError === 'EACCES' || found.statError === 'EPERM') {
    throw refuse(
      'cannot be read (permission denied)',
      'make its folder readable to this user, or point duckdb({ path }) elsewhere',
    );
  }
  if (found.kind === 'dir')
    throw refuse(
      'is a folder',
      `point duckdb({ path }) (FEATUREFLOW_DUCKDB) at a file, e.g. ${path.replace(/\/?$/, '/featureflow.duckdb')}`,
    );
  if (found.kind === 'other')
    throw refuse(
      'is not a regular file (a pipe, socket or device)',
      'point duckdb({ path }) (FEATUREFLOW_DUCKDB) at a file',
    );
  if (found.kind === 'file' && found.size! > 0 && !found.duckdb) {
    throw refuse(
      'is not a DuckDB file',
      'point duckdb({ path }) (FEATUREFLOW_DUCKDB) at a new file (featureflow creates it), or at a change log featureflow wrote',
    );
  }
  if (found.kind === 'file') return;
  if (found.statError !== 'ENOENT') throw refuse(`cannot be read (${found.statError})`, 'check the path');
  if (readOnly)
    throw refuse('does not exist', 'run `featureflow ingest` first, or fix duckdb({ path }) (FEATUREFLOW_DUCKDB)');
  const code = found.mkdirError;
  if (code === 'ENOTDIR' || code === 'EEXIST') throw refuse('is under a file, not a folder', elsewhere);
  if (code !== undefined) {
    throw refuse(
      `cannot be created: its folder ${dirname(path)} cannot be made (${code})`,
      'create the folder with write access for this user, or point duckdb({ path }) elsewhere',
    );
  }
}
