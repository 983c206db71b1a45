import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { FeatureflowError } from '../../../framework/errors.js';
import type { ViewDescriptor } from '../../../framework/features/fingerprint.js';

// The read protocol between a process that holds the store (read-service.ts) and its clients
// (remote-offline-store.ts): HTTP
// over a Unix domain socket beside the DuckDB file. A request is `POST /v1/<operation>` with a body of
// one JSON line (a WireRequest), followed by a spine's Arrow IPC stream when the spine is an Arrow
// table. Answers: `hello` and `status` JSON; `latest`, `asOf`, `trainingSet`, `deadLetters` an Arrow
// IPC stream with the row count (or the error) in a trailer; `export` JSON lines of progress, then the
// result (or the error). An error is `{ error: { code, message } }`, raised by the client as a
// FeatureflowError.

/** Version of the read protocol; client and server must speak the same. */
export const READ_PROTOCOL = 1;
/** Media type of a request body: one JSON line, then optional Arrow IPC bytes. */
export const REQUEST_TYPE = 'application/x-featureflow-read';
export const ARROW_STREAM_TYPE = 'application/vnd.apache.arrow.stream';
export const NDJSON_TYPE = 'application/x-ndjson';
/** Trailers of an Arrow answer: the rows sent, or the error (URI-encoded JSON) that cut it short. */
export const ROWS_TRAILER = 'featureflow-rows';
export const ERROR_TRAILER = 'featureflow-error';

/** A view version by name, and the version when the client's definitions name one. */
export interface WireView {
  readonly name: string;
  readonly version?: number;
}

/** An instant: µs since the epoch, or the text the caller gave. */
export type WireInstant = { readonly micros: string } | { readonly text: string };

/** A spine row's value (JSON has no bigint, Date, NaN or -0). */
export type WireValue =
  | string
  | number
  | boolean
  | null
  | { readonly $bigint: string }
  | { readonly $date: string }
  | { readonly $number: string };

/** A spine: a file path (absolute), rows, or the Arrow IPC stream after the JSON line. */
export type WireSpine =
  | { readonly path: string }
  | { readonly rows: readonly Readonly<Record<string, WireValue>>[] }
  | { readonly arrow: true };

export interface WireTrainingSet {
  readonly spine: WireSpine;
  /** References `view`, `view@2`, `view@2:feature`, with the client's versions filled in. */
  readonly features: readonly string[];
  readonly timestampColumn?: string;
  readonly ttl?: number | string;
  readonly fullFeatureNames?: boolean;
}

export type WireRead =
  | { readonly view: WireView; readonly asOf?: WireInstant }
  | { readonly trainingSet: WireTrainingSet };

/** A request body's JSON line. */
export interface WireRequest {
  /** The client's definitions of the view versions it names: the server checks the stored tables against them. */
  readonly definitions: readonly ViewDescriptor[];
  readonly read?: WireRead;
  /** `export`: the output file (absolute) and format. */
  readonly out?: string;
  readonly format?: 'parquet' | 'arrow';
  /** `deadLetters`: of one view, or all. */
  readonly view?: string;
}

/** A coded error on the wire. */
export interface WireError {
  readonly code: string;
  readonly message: string;
}

/** What `hello` answers. */
export interface WireHello {
  readonly protocol: number;
  /** The store's absolute path. */
  readonly store: string;
  readonly pid: number;
}

/** Longest socket path the kernel takes (`sun_path` is 108 bytes on Linux, 104 on macOS, with its NUL). */
const MAX_SOCKET_PATH = 100;

/**
 * The socket a process holding the store at `storePath` answers reads on: `.<file>.sock` beside the
 * file, or, when that path is too long for a socket, one in the temp folder named by a hash of the
 * store's absolute path.
 */
export function readSocketPath(storePath: string): string {
  const store = storeIdentity(storePath);
  const beside = join(dirname(store), `.${basename(store)}.sock`);
  if (Buffer.byteLength(beside) <= MAX_SOCKET_PATH) return beside;
  return join(tmpdir(), `featureflow-${createHash('sha256').update(store).digest('hex').slice(0, 16)}.sock`);
}

/**
 * The store's absolute path with symbolic links resolved: the holder and a reader that name the file
 * through different links find the same socket and agree it is the same store.
 */
export function storeIdentity(storePath: string): string {
  try {
    return realpathSync(storePath);
  } catch {
    return resolve(storePath);
  }
}

/** Decodes a coded error from the wire. */
export function wireError(error: WireError): FeatureflowError {
  return new FeatureflowError(error.code, error.message);
}

/** A spine value from the wire. */
export function valueOfWire(v: WireValue): unknown {
  if (v === null || typeof v !== 'object') return v;
  if ('$bigint' in v) return BigInt(v.$bigint);
  if ('$date' in v) return new Date(v.$date);
  return Number(v.$number);
}
