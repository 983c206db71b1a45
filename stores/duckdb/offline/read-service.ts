import { chmodSync, lstatSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { DuckDBConnection } from '@duckdb/node-api';
import * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';
import type { ExportProgress, ExportRequest, TrainingSetOptions } from '../../../framework/interfaces/offline-store.js';
import type { DuckDBChangeLog } from '../duckdb-change-log.js';
import { quoteLiteral } from '../duckdb-database.js';
import { IpcEncoder, streamArrow, type ArrowStream } from './duckdb-arrow.js';
import { checkDefinition, DuckDBOfflineStore, READER_MEMORY_LIMIT, readError } from './duckdb-offline-store.js';
import { featureStatus, readViewRecords } from './feature-catalog.js';
import { MemoryLease, Slots } from './read-limits.js';
import { readTransaction } from './read-transaction.js';
import {
  ARROW_STREAM_TYPE,
  ERROR_TRAILER,
  NDJSON_TYPE,
  READ_PROTOCOL,
  readSocketPath,
  storeIdentity,
  ROWS_TRAILER,
  valueOfWire,
  type WireError,
  type WireInstant,
  type WireRead,
  type WireRequest,
} from './read-protocol.js';

/** Options of {@link serveReads}. */
export interface ServeReadsOptions {
  /** The store's path (the socket is made beside it). */
  readonly path: string;
  /** DuckDB memory the instance gets at least while reads run (the ingest's own limit is lower). Default {@link READER_MEMORY_LIMIT}. */
  readonly memoryLimit?: string;
  /** Reads running at once; more wait their turn. Default {@link MAX_READS}. */
  readonly maxReads?: number;
}

/** The read service of a process; {@link close} before the change log closes. */
export interface ReadService {
  readonly socket: string;
  /** Stops answering: new requests are refused, running ones interrupted; idempotent. */
  close(): Promise<void>;
}

/**
 * Reads running at once. Each holds a DuckDB connection and a thread of libuv's pool (4 by default)
 * while DuckDB works: two leave the ingest's own connection threads to run on.
 */
const MAX_READS = 2;
/** Largest request body (a spine sent as Arrow or rows). */
const MAX_BODY_BYTES = 1024 * 1024 * 1024;
/** How long {@link ReadService.close} waits for interrupted reads to let go of their connections. */
const CLOSE_WAIT_MS = 10_000;
/** Milliseconds between progress lines of an export. */
const PROGRESS_MS = 250;

/** One request being answered: its connection (to interrupt) and when it is done. */
interface Running {
  readonly connection: DuckDBConnection;
  stopped: boolean;
}

/**
 * Answers reads of the store for other processes while this one holds it (DuckDB lets no other
 * process open the file): HTTP over a Unix domain socket beside the DuckDB file (mode 0600: this
 * user only), the protocol of remote-offline-store.ts. Each request reads on a connection of its own
 * to this process's DuckDB instance, in one transaction: DuckDB's snapshot isolation gives it one
 * consistent state, the checkpoint its manifest names, while the ingest commits on its own connection.
 * Names resolve against the client's definitions (sent with the request), as a local reader's would.
 */
export async function serveReads(log: DuckDBChangeLog, options: ServeReadsOptions): Promise<ReadService> {
  const socket = readSocketPath(options.path);
  const store = options.path;
  const slots = new Slots(options.maxReads ?? MAX_READS);
  const memory = new MemoryLease(options.memoryLimit ?? READER_MEMORY_LIMIT);
  const running = new Set<Running>();
  const finished = new Set<Promise<void>>();
  let closing = false;

  const server = http.createServer((req, res) => {
    const done = answer(req, res).catch(() => undefined);
    finished.add(done);
    void done.finally(() => finished.delete(done));
  });
  // The ingest's lifetime is its own: an idle socket does not keep the process alive.
  server.unref();

  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const operation = /^\/v1\/([A-Za-z]+)$/.exec(req.url ?? '')?.[1];
    let body: { request: WireRequest; bytes: Buffer };
    try {
      if (req.method !== 'POST' || !operation || !OPERATIONS.has(operation))
        throw new FeatureflowError('FF_EXPORT', `the read service has no ${req.method} ${req.url}`);
      body = await readBody(req);
    } catch (error) {
      return fail(res, error);
    }
    if (operation === 'hello') {
      const hello = { protocol: READ_PROTOCOL, store: storeIdentity(options.path), pid: process.pid };
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(hello));
    }
    if (closing) return fail(res, stopping(store));
    try {
      await slots.acquire();
    } catch (error) {
      // The service closed while this request waited its turn.
      return fail(res, error);
    }
    let work: Running | undefined;
    try {
      if (closing) throw stopping(store);
      work = { connection: await log.openConnection(), stopped: false };
      running.add(work);
      const current = work;
      // A client that goes away stops its read.
      res.on('close', () => {
        if (res.writableFinished) return;
        current.stopped = true;
        current.connection.interrupt();
      });
      await memory.acquire(work.connection);
      try {
        await run(operation, body.request, body.bytes, work, res);
      } finally {
        await memory.release(work.connection);
      }
    } catch (error) {
      fail(res, work?.stopped && closing ? stopping(store) : error);
    } finally {
      if (work) {
        running.delete(work);
        work.connection.closeSync();
      }
      slots.release();
    }
  }

  async function run(
    operation: string,
    request: WireRequest,
    bytes: Buffer,
    work: Running,
    res: http.ServerResponse,
  ): Promise<void> {
    const c = work.connection;
    // One transaction per request: every statement of the read sees the same committed state. It
    // begins once a training set's spine is loaded (see DuckDBOfflineStore's beginRead).
    const transaction = readTransaction(c);
    const begin = () => transaction.begin();
    try {
      const offline = new DuckDBOfflineStore(c, { queryMemory: false, beginRead: begin });
      // A stored version's fingerprint never changes: checked outside the transaction.
      const records = await readViewRecords(c);
      for (const descriptor of request.definitions) {
        const record = records.find((r) => r.name === descriptor.name && r.version === descriptor.version);
        if (record) checkDefinition(record, descriptor);
      }
      switch (operation) {
        case 'status':
          await begin();
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(await featureStatus(c)));
          break;
        case 'latest':
        case 'asOf':
        case 'trainingSet':
          await sendArrow(res, work, await offline.batches(exportRequest(request.read, bytes)));
          break;
        case 'deadLetters':
          await begin();
          await sendArrow(res, work, await deadLetters(c, request.view));
          break;
        case 'export':
          await sendExport(res, offline, request, bytes);
          break;
      }
    } finally {
      await transaction.end();
    }
  }

  await listen(server, socket);
  return {
    socket,
    async close() {
      if (closing) return;
      closing = true;
      slots.closeAll(stopping(store));
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const work of running) {
        work.stopped = true;
        work.connection.interrupt();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...finished]),
        new Promise((r) => {
          timer = setTimeout(r, CLOSE_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      rmSync(socket, { force: true });
    },
  };
}

const OPERATIONS = new Set(['hello', 'status', 'latest', 'asOf', 'trainingSet', 'deadLetters', 'export']);

function stopping(store: string): FeatureflowError {
  return new FeatureflowError(
    'FF_EXPORT',
    `the featureflow process holding ${store} is stopping and no longer answers reads; open the store again once it stopped`,
  );
}

/** An Arrow answer: the IPC stream, batch by batch with backpressure, then the row count (or the error) as a trailer. */
async function sendArrow(res: http.ServerResponse, work: Running, stream: ArrowStream): Promise<void> {
  res.writeHead(200, { 'content-type': ARROW_STREAM_TYPE, trailer: `${ROWS_TRAILER}, ${ERROR_TRAILER}` });
  const encoder = new IpcEncoder('stream', stream.schema);
  let rows = 0;
  try {
    await send(res, encoder.start());
    for await (const batch of stream.batches) {
      if (work.stopped) throw new FeatureflowError('FF_EXPORT', 'the read was stopped');
      await send(res, encoder.write(batch));
      rows += batch.numRows;
    }
    await send(res, encoder.finish());
    res.addTrailers({ [ROWS_TRAILER]: String(rows) });
  } catch (error) {
    res.addTrailers({ [ERROR_TRAILER]: encodeURIComponent(JSON.stringify(coded(error))) });
  }
  res.end();
}

/** An export: the file is written here; progress lines, then the result or the error. */
async function sendExport(
  res: http.ServerResponse,
  offline: DuckDBOfflineStore,
  request: WireRequest,
  bytes: Buffer,
): Promise<void> {
  if (request.out === undefined) throw new FeatureflowError('FF_EXPORT', 'an export request names no output file');
  const exportOf = exportRequest(request.read, bytes);
  res.writeHead(200, { 'content-type': NDJSON_TYPE });
  let last = 0;
  const onProgress = (progress: ExportProgress) => {
    if (Date.now() - last < PROGRESS_MS) return;
    last = Date.now();
    res.write(JSON.stringify({ progress }) + '\n');
  };
  try {
    const result = await offline.export(exportOf, request.out, {
      ...(request.format ? { format: request.format } : {}),
      onProgress,
    });
    res.end(JSON.stringify({ result }) + '\n');
  } catch (error) {
    res.end(JSON.stringify({ error: coded(error) }) + '\n');
  }
}

/** The rows views rejected, streamed. */
async function deadLetters(c: DuckDBConnection, view: string | undefined): Promise<ArrowStream> {
  const where = view === undefined ? '' : `WHERE view = ${quoteLiteral(view)}`;
  const hasTable = (
    await c.runAndReadAll(
      `SELECT count(*) FROM duckdb_tables() WHERE table_name = '_feature_dead_letters' AND NOT temporary`,
    )
  ).getRows()[0]![0];
  const sql = `SELECT * FROM _feature_dead_letters ${where}`;
  const expectedRows = Number(hasTable)
    ? Number((await c.runAndReadAll(`SELECT count(*) FROM (${sql})`)).getRows()[0]![0])
    : 0;
  return streamArrow(c, `${sql} ORDER BY lsn`, [], { expectedRows });
}

/** A read request from the wire as the store takes it. */
function exportRequest(read: WireRead | undefined, bytes: Buffer): ExportRequest {
  if (!read) throw new FeatureflowError('FF_EXPORT', 'a read request names no view and no training set');
  if ('view' in read)
    return read.asOf === undefined ? { view: read.view } : { view: read.view, asOf: instantOf(read.asOf) };
  const t = read.trainingSet;
  const spine: TrainingSetOptions['spine'] =
    'path' in t.spine
      ? t.spine.path
      : 'rows' in t.spine
        ? t.spine.rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, valueOfWire(v)])))
        : arrow.tableFromIPC(bytes);
  return {
    trainingSet: {
      spine,
      features: t.features,
      ...(t.timestampColumn === undefined ? {} : { timestampColumn: t.timestampColumn }),
      ...(t.ttl === undefined ? {} : { ttl: t.ttl }),
      ...(t.fullFeatureNames === undefined ? {} : { fullFeatureNames: t.fullFeatureNames }),
    },
  };
}

function instantOf(at: WireInstant): bigint | string {
  return 'micros' in at ? BigInt(at.micros) : at.text;
}

/** An error as the wire carries it: a FeatureflowError's code and message; anything else as FF_EXPORT. */
function coded(error: unknown): WireError {
  const e = readError(error);
  if (e instanceof FeatureflowError) return { code: e.code, message: e.message };
  return {
    code: 'FF_EXPORT',
    message: `a read failed in the featureflow process holding the store (pid ${process.pid}): ${String((e as Error)?.message ?? e)}`,
  };
}

/** Answers a request that failed before its answer began. */
function fail(res: http.ServerResponse, error: unknown): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  res.writeHead(error instanceof FeatureflowError ? 422 : 500, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: coded(error) }));
}

/** The request body: its JSON line, and the bytes after it. */
async function readBody(req: http.IncomingMessage): Promise<{ request: WireRequest; bytes: Buffer }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new FeatureflowError(
        'FF_EXPORT',
        `a read request is larger than ${MAX_BODY_BYTES} bytes; give the spine as a file`,
      );
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const end = body.indexOf(0x0a);
  try {
    const request = JSON.parse(body.subarray(0, end < 0 ? body.length : end).toString('utf8')) as WireRequest;
    return { request: { ...request, definitions: request.definitions ?? [] }, bytes: body.subarray(end + 1) };
  } catch {
    throw new FeatureflowError('FF_EXPORT', 'a read request is not one JSON line; use a featureflow client');
  }
}

/** Writes bytes with backpressure; gives up when the client went away. */
async function send(res: http.ServerResponse, parts: readonly Uint8Array[]): Promise<void> {
  for (const part of parts) {
    if (res.destroyed) throw new FeatureflowError('FF_EXPORT', 'the client went away');
    if (!res.write(part)) {
      await new Promise<void>((r) => {
        const go = () => {
          res.off('drain', go);
          res.off('close', go);
          r();
        };
        res.on('drain', go);
        res.on('close', go);
      });
    }
  }
}

/**
 * Listens on the socket (this user only). A socket file left by a process that was killed answers
 * nothing: it is removed and replaced. One that answers belongs to a live process, and a file that is
 * not a socket is not ours to remove.
 */
async function listen(server: http.Server, socket: string): Promise<void> {
  try {
    await listenOnce(server, socket);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw socketError(socket, error);
    if (!lstatSync(socket).isSocket()) {
      throw new FeatureflowError(
        'FF_STORE_PATH',
        `${socket}, where featureflow answers reads of the store, is a file other than a socket; remove it`,
      );
    }
    if (await answers(socket)) {
      throw new FeatureflowError(
        'FF_STORE_LOCKED',
        `another process answers reads on ${socket}; stop it (it is not this store's holder: this process is)`,
      );
    }
    rmSync(socket, { force: true });
    try {
      await listenOnce(server, socket);
    } catch (again) {
      throw socketError(socket, again);
    }
  }
  chmodSync(socket, 0o600);
}

function socketError(socket: string, error: unknown): FeatureflowError {
  return new FeatureflowError(
    'FF_STORE_PATH',
    `the socket ${socket}, where featureflow answers reads of the store while it runs, cannot be made ` +
      `(${(error as NodeJS.ErrnoException).code ?? String(error)}); make the store's folder writable to this user`,
    { cause: error },
  );
}

function listenOnce(server: http.Server, socket: string): Promise<void> {
  return new Promise<void>((resolveListen, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolveListen();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    // The socket is made with the process's umask (bind happens within listen()); 0600 follows at once.
    const umask = process.umask(0o177);
    try {
      server.listen(socket);
    } finally {
      process.umask(umask);
    }
  });
}

/** True when something accepts connections on the socket. */
function answers(socket: string): Promise<boolean> {
  return new Promise<boolean>((resolveAnswer) => {
    const probe = net.connect(socket);
    probe.setTimeout(2000);
    probe.once('connect', () => {
      probe.destroy();
      resolveAnswer(true);
    });
    probe.once('timeout', () => {
      probe.destroy();
      resolveAnswer(false);
    });
    probe.once('error', () => resolveAnswer(false));
  });
}
