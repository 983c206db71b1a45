import { existsSync } from 'node:fs';
import http from 'node:http';
import { resolve } from 'node:path';
import * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';
import { FeatureRegistry, type FeatureDefinitions } from '../../../framework/features/feature-registry.js';
import type { FeatureService } from '../../../framework/features/feature-service.js';
import type { FeatureSelection, FeatureView } from '../../../framework/features/feature-view.js';
import { describeView, type ViewDescriptor } from '../../../framework/features/fingerprint.js';
import { toMicros } from '../../../framework/features/instant.js';
import type {
  ExportOptions,
  ExportProgress,
  ExportRequest,
  ExportResult,
  FeatureViewStatus,
  OfflineStore,
  SpineInput,
  TrainingSetOptions,
  ViewRef,
} from '../../../framework/interfaces/offline-store.js';
import {
  ERROR_TRAILER,
  READ_PROTOCOL,
  readSocketPath,
  REQUEST_TYPE,
  ROWS_TRAILER,
  storeIdentity,
  type WireError,
  type WireHello,
  type WireInstant,
  type WireRead,
  type WireRequest,
  type WireSpine,
  type WireTrainingSet,
  type WireValue,
  type WireView,
  wireError,
} from './read-protocol.js';

/**
 * The offline store of a DuckDB file that another process holds (`featureflow ingest` or `serve`),
 * read through that process: each read runs there in a transaction of its own, consistent as of one
 * checkpoint while the ingest goes on. {@link openOfflineStore} returns one when the file is locked
 * and its socket answers. Names resolve against this client's definitions, as a local reader's would.
 */
export class RemoteOfflineStore implements OfflineStore {
  private readonly registry: FeatureRegistry;

  private constructor(
    /** The socket the holding process answers on. */
    readonly socket: string,
    /** The store's absolute path. */
    readonly store: string,
    /** The holding process. */
    readonly pid: number,
    definitions: FeatureDefinitions,
  ) {
    this.registry = new FeatureRegistry(definitions);
  }

  /** The socket of the store at `storePath` (see {@link readSocketPath}). */
  static socketOf(storePath: string): string {
    return readSocketPath(storePath);
  }

  /** A client of the process holding the store at `storePath`, or null when nothing answers on its socket. */
  static async connect(
    storePath: string,
    options: { readonly definitions?: FeatureDefinitions } = {},
  ): Promise<RemoteOfflineStore | null> {
    const socket = readSocketPath(storePath);
    const store = storeIdentity(storePath);
    if (!existsSync(socket)) return null;
    let hello: WireHello;
    try {
      hello = await helloOf(socket);
    } catch {
      return null;
    }
    if (hello.store !== store) return null;
    if (hello.protocol !== READ_PROTOCOL) {
      throw new FeatureflowError(
        'FF_STORE_LOCKED',
        `the featureflow process holding ${store} (pid ${hello.pid}) answers reads in protocol ${hello.protocol}, this featureflow ` +
          `speaks ${READ_PROTOCOL}; read the store with the featureflow version that process runs, or restart it with this one`,
      );
    }
    return new RemoteOfflineStore(socket, store, hello.pid, options.definitions ?? {});
  }

  async latest(view: ViewRef): Promise<arrow.Table> {
    const definitions = new Map<string, ViewDescriptor>();
    const read = { view: this.viewRef(view, definitions) };
    return this.table('latest', { definitions: [...definitions.values()], read });
  }

  async asOf(view: ViewRef, at: Date | string | bigint): Promise<arrow.Table> {
    const definitions = new Map<string, ViewDescriptor>();
    const read = { view: this.viewRef(view, definitions), asOf: wireInstant(at) };
    return this.table('asOf', { definitions: [...definitions.values()], read });
  }

  async trainingSet(options: TrainingSetOptions): Promise<arrow.Table> {
    const definitions = new Map<string, ViewDescriptor>();
    const { trainingSet, spine } = this.wireTrainingSet(options, definitions);
    return this.table('trainingSet', { definitions: [...definitions.values()], read: { trainingSet } }, spine);
  }

  async export(request: ExportRequest, out: string, options: ExportOptions = {}): Promise<ExportResult> {
    const definitions = new Map<string, ViewDescriptor>();
    let read: WireRead;
    let spine: Uint8Array | undefined;
    if ('trainingSet' in request) {
      const wire = this.wireTrainingSet(request.trainingSet, definitions);
      read = { trainingSet: wire.trainingSet };
      spine = wire.spine;
    } else {
      const view = this.viewRef(request.view, definitions);
      read = request.asOf === undefined ? { view } : { view, asOf: wireInstant(request.asOf) };
    }
    const body: WireRequest = {
      definitions: [...definitions.values()],
      read,
      out: resolve(out),
      ...(options.format ? { format: options.format } : {}),
    };
    const res = await this.send('export', body, spine);
    let result: ExportResult | undefined;
    let failure: WireError | undefined;
    let rest = '';
    const lines = (text: string) => {
      rest += text;
      for (let at = rest.indexOf('\n'); at >= 0; at = rest.indexOf('\n')) {
        const line = JSON.parse(rest.slice(0, at)) as {
          progress?: ExportProgress;
          result?: ExportResult;
          error?: WireError;
        };
        rest = rest.slice(at + 1);
        if (line.progress) options.onProgress?.(line.progress);
        if (line.result) result = line.result;
        if (line.error) failure = line.error;
      }
    };
    await this.receive(res, (chunk) => lines(chunk.toString('utf8')));
    if (failure) throw wireError(failure);
    if (!result) throw this.lost('the export ended without its result');
    options.onProgress?.({ rows: result.rows, total: result.rows, percent: 100, done: true });
    return result;
  }

  async status(): Promise<FeatureViewStatus[]> {
    return this.json<FeatureViewStatus[]>('status', { definitions: [] });
  }

  /** The rows views rejected, with the error (for one view, or all). */
  async deadLetters(view?: string): Promise<arrow.Table> {
    return this.table('deadLetters', { definitions: [], ...(view === undefined ? {} : { view }) });
  }

  /** Nothing to release: each read is a request of its own. */
  close(): void {}

  /** A view reference with the client's version filled in; its definition (when the client has one) joins `definitions`. */
  private viewRef(ref: ViewRef, definitions: Map<string, ViewDescriptor>): WireView {
    if (typeof ref === 'object' && 'kind' in ref) {
      const view = ref as FeatureView;
      definitions.set(`${view.name}@${view.version}`, describeView(view));
      return { name: view.name, version: view.version };
    }
    const name = typeof ref === 'string' ? ref : ref.name;
    const version = (typeof ref === 'string' ? undefined : ref.version) ?? this.registry.view(name)?.version;
    if (version === undefined) return { name };
    this.define(name, version, definitions);
    return { name, version };
  }

  private define(name: string, version: number, definitions: Map<string, ViewDescriptor>): void {
    const defined = this.registry.view(name, version);
    if (defined) definitions.set(`${name}@${version}`, describeView(defined));
  }

  /** A training set's features as references with versions, and its spine (Arrow bytes when an Arrow table). */
  private wireTrainingSet(
    options: TrainingSetOptions,
    definitions: Map<string, ViewDescriptor>,
  ): { trainingSet: WireTrainingSet; spine?: Uint8Array } {
    const features: string[] = [];
    const features_ = options.features as TrainingSetOptions['features'] | string;
    const items: readonly (FeatureView | FeatureSelection | string)[] =
      typeof features_ === 'string'
        ? (this.registry.service(features_)?.selections ?? [features_])
        : isService(features_)
          ? features_.selections
          : features_;
    for (const item of items) {
      if (typeof item === 'string') {
        const m = FEATURE_REF.exec(item);
        if (!m) {
          // Passed on as given: the server refuses it with the same error a local read gives.
          features.push(item);
          continue;
        }
        const version = m[2] ? Number(m[2]) : this.registry.view(m[1]!)?.version;
        if (version !== undefined) this.define(m[1]!, version, definitions);
        features.push(`${m[1]}${version === undefined ? '' : `@${version}`}${m[3] ? `:${m[3]}` : ''}`);
      } else if ('kind' in item && item.kind === 'featureView') {
        this.define(item.name, item.version, definitions);
        features.push(`${item.name}@${item.version}`);
      } else {
        const s = item as FeatureSelection;
        this.define(s.view.name, s.view.version, definitions);
        for (const f of s.features) features.push(`${s.view.name}@${s.view.version}:${f}`);
      }
    }
    const { spine, bytes } = wireSpine(options.spine);
    return {
      trainingSet: {
        spine,
        features,
        ...(options.timestampColumn === undefined ? {} : { timestampColumn: options.timestampColumn }),
        ...(options.ttl === undefined ? {} : { ttl: options.ttl }),
        ...(options.fullFeatureNames === undefined ? {} : { fullFeatureNames: options.fullFeatureNames }),
      },
      ...(bytes ? { spine: bytes } : {}),
    };
  }

  /** Sends a request; resolves with the answer once its headers came, or fails with the answer's coded error. */
  private send(operation: string, body: WireRequest, bytes?: Uint8Array): Promise<http.IncomingMessage> {
    const payload = Buffer.concat([Buffer.from(JSON.stringify(body) + '\n'), bytes ?? Buffer.alloc(0)]);
    return new Promise<http.IncomingMessage>((resolveAnswer, reject) => {
      const req = http.request(
        {
          socketPath: this.socket,
          path: `/v1/${operation}`,
          method: 'POST',
          agent: false,
          headers: { 'content-type': REQUEST_TYPE, 'content-length': payload.length },
        },
        (res) => {
          if (res.statusCode === 200) return resolveAnswer(res);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(this.lost(e.message)));
          res.on('end', () => {
            try {
              reject(wireError((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: WireError }).error));
            } catch {
              reject(this.lost(`it answered ${res.statusCode} without a coded error`));
            }
          });
        },
      );
      req.on('error', (e) => reject(this.lost(e.message)));
      req.end(payload);
    });
  }

  /** Reads an answer to its end, chunk by chunk; fails when the connection breaks first. */
  private receive(res: http.IncomingMessage, onChunk: (chunk: Buffer) => void): Promise<void> {
    return new Promise<void>((done, reject) => {
      res.on('data', onChunk);
      res.on('error', (e) => reject(this.lost(e.message)));
      res.on('aborted', () => reject(this.lost('the answer was cut off')));
      res.on('end', () => (res.complete ? done() : reject(this.lost('the answer was cut off'))));
    });
  }

  private async json<T>(operation: string, body: WireRequest): Promise<T> {
    const res = await this.send(operation, body);
    const chunks: Buffer[] = [];
    await this.receive(res, (c) => chunks.push(c));
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
  }

  /** An Arrow answer as a table, checked against the row count the server sent after it. */
  private async table(operation: string, body: WireRequest, bytes?: Uint8Array): Promise<arrow.Table> {
    const res = await this.send(operation, body, bytes);
    const chunks: Buffer[] = [];
    await this.receive(res, (c) => chunks.push(c));
    const error = res.trailers[ERROR_TRAILER];
    if (error) throw wireError(JSON.parse(decodeURIComponent(error)) as WireError);
    const table = arrow.tableFromIPC(Buffer.concat(chunks));
    const rows = res.trailers[ROWS_TRAILER];
    if (rows === undefined || Number(rows) !== table.numRows)
      throw this.lost(`the answer held ${table.numRows} rows of ${rows ?? 'an unknown number'}`);
    return table;
  }

  private lost(reason: string): FeatureflowError {
    return new FeatureflowError(
      'FF_EXPORT',
      `the featureflow process holding ${this.store} (pid ${this.pid}) stopped answering a read on ${this.socket} (${reason}); ` +
        'if it stopped, open the store again (the file itself is readable once no process holds it)',
    );
  }
}

/** How long the server may take to answer `hello` before it counts as not answering. */
const HELLO_TIMEOUT_MS = 10_000;

const FEATURE_REF = /^([a-z][a-z0-9_]*)(?:@(\d+))?(?::([A-Za-z_][A-Za-z0-9_]*))?$/;

function isService(features: unknown): features is FeatureService {
  return !Array.isArray(features) && (features as FeatureService)?.kind === 'featureService';
}

function wireInstant(at: Date | string | bigint): WireInstant {
  if (typeof at === 'bigint') return { micros: at.toString() };
  if (at instanceof Date && !Number.isNaN(at.getTime())) return { micros: toMicros(at).toString() };
  return { text: String(at) };
}

/** A spine for the wire: a path made absolute (the server's folder is not the caller's), rows, or Arrow bytes. */
function wireSpine(spine: SpineInput): { spine: WireSpine; bytes?: Uint8Array } {
  if (typeof spine === 'string') return { spine: { path: resolve(spine) } };
  if (spine instanceof arrow.Table) return { spine: { arrow: true }, bytes: arrow.tableToIPC(spine, 'stream') };
  const rows = spine.map((row) => {
    const out: Record<string, WireValue> = {};
    for (const [k, v] of Object.entries(row)) out[k] = wireValue(v);
    return out;
  });
  return { spine: { rows } };
}

function wireValue(v: unknown): WireValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : { $date: v.toISOString() };
  if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0) ? v : { $number: String(v) };
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  // The spine loader reads any other value as its text.
  return String(v);
}

/** `hello` of the server on `socket`: fails when nothing answers in time. */
function helloOf(socket: string): Promise<WireHello> {
  return new Promise<WireHello>((resolveHello, reject) => {
    const req = http.request(
      {
        socketPath: socket,
        path: '/v1/hello',
        method: 'POST',
        agent: false,
        headers: { 'content-type': REQUEST_TYPE },
        timeout: HELLO_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          try {
            if (res.statusCode !== 200) throw new Error(`hello answered ${res.statusCode}`);
            resolveHello(JSON.parse(Buffer.concat(chunks).toString('utf8')) as WireHello);
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in time')));
    req.on('error', reject);
    req.end(JSON.stringify({ definitions: [] }) + '\n');
  });
}
