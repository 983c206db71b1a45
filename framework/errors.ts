/**
 * featureflow's coded errors. Every error a user can meet has a code, a message that says what
 * happened, to which thing, and the fix, and a `retriable` flag that the one retry policy of the
 * ingestion engine reads (and nothing else). The framework's own codes are here; each adapter
 * declares its own in its `<name>-errors.ts` with {@link defineErrors}, where it also translates
 * its third party's errors. `docs/errors.md` lists every code; a test keeps the two in step.
 */

/** What a code means, and whether the engine retries it. */
export interface ErrorInfo {
  readonly retriable: boolean;
  readonly summary: string;
}

/** Codes to their meaning. */
export type ErrorCatalog = Readonly<Record<string, ErrorInfo>>;

const registry = new Map<string, ErrorInfo>();

/** Registers a catalogue of codes (an adapter's, at import) and returns it. */
export function defineErrors<C extends ErrorCatalog>(catalog: C): C {
  for (const [code, info] of Object.entries(catalog)) registry.set(code, info);
  return catalog;
}

/** Every code registered so far (the framework's, and those of the adapters imported). */
export function registeredErrors(): ReadonlyMap<string, ErrorInfo> {
  return registry;
}

/** The framework's codes. */
export const ErrorCodes = defineErrors({
  FF_CONFIG_INVALID: { retriable: false, summary: 'the configuration is invalid' },
  FF_TOAST_UNFILLED: {
    retriable: false,
    summary: 'an unchanged TOAST value has no earlier image of its row to be filled from',
  },
  FF_TABLES_CHANGED: { retriable: false, summary: 'a table the change log holds is no longer configured' },
  FF_FEATURE_DEFINITION: { retriable: false, summary: 'a feature definition is invalid' },
  FF_FEATURE_VERSION: { retriable: false, summary: 'a feature definition changed without a version bump' },
  FF_EXPORT: { retriable: false, summary: 'an export cannot be made as asked' },
  FF_SERVE_BAD_REQUEST: { retriable: false, summary: 'a request to the serving API is invalid' },
  FF_SERVE_NOT_FOUND: {
    retriable: false,
    summary: 'a view, entity key, route or model asked of the serving API is unknown',
  },
  FF_SERVE_UNAUTHORIZED: {
    retriable: false,
    summary: 'a request to the serving API lacks the configured bearer token',
  },
  FF_SERVE_TOO_LARGE: { retriable: false, summary: 'a request body is larger than the serving API accepts' },
  FF_SERVE_TIMEOUT: { retriable: true, summary: 'a view did not reach the position a request waited for in time' },
  FF_SERVE_NOT_READY: { retriable: true, summary: 'the online store is not loaded yet, or cannot be reached' },
  FF_SERVE_FAILED: { retriable: false, summary: 'a request to the serving API failed unexpectedly' },
});

/** A code of the framework or of an adapter. */
export type ErrorCode = string;

/** An error with a stable code. `cause` keeps the original error (e.g. a driver error with its own code). */
export class FeatureflowError extends Error {
  readonly code: ErrorCode;
  /** Worth retrying: set by whoever raises it (an adapter translating a third party's error), else the code's. */
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options?: { readonly cause?: unknown; readonly retriable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FeatureflowError';
    this.code = code;
    this.retriable = options?.retriable ?? registry.get(code)?.retriable ?? false;
  }
}

/**
 * True when the error is a FeatureflowError marked retriable: adapters translate what is worth retrying.
 * Read by name as well as by class: a module loaded twice (a config loader's copy) makes two classes.
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof FeatureflowError) return error.retriable;
  const e = error as { name?: unknown; retriable?: unknown } | null;
  return e !== null && typeof e === 'object' && e.name === 'FeatureflowError' && e.retriable === true;
}
