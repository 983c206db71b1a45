import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { FeatureflowError } from '../errors.js';
import { ERROR_SCHEMA, type RouteSettings } from './routes/common.js';
import { featureRoutes } from './routes/features.js';
import { modelRoutes } from './routes/model.js';
import { opsRoutes } from './routes/ops.js';
import { pageRoutes, PUBLIC_PAGE_ROUTES } from './routes/page.js';
import { predictRoutes } from './routes/predict.js';
import { streamRoutes, type StreamSettings } from './routes/stream.js';
import type { ServingContext } from './serving-context.js';
import { ServingError } from './serving-errors.js';

/** Options of the HTTP app. */
export interface HttpAppOptions {
  /**
   * When set, every route but `/health` and the live page's files (`/`, which hold no data) needs
   * `Authorization: Bearer <token>` (else 401). Default none: anyone who can reach the port may read
   * features and predictions, so keep the default host.
   */
  readonly bearerToken?: string;
  /** Largest request body, bytes (larger: 413). Default 1 MiB. */
  readonly bodyLimit?: number;
  /** Most keys or rows in one request. Default 1 000. */
  readonly maxKeys?: number;
  /** Longest read-after-write wait (`timeoutMs`) a request may ask for, ms. Default 10 000. */
  readonly maxWaitMs?: number;
  /** The wait when a request gives `minPosition` without `timeoutMs`, ms. Default 5 000. */
  readonly defaultWaitMs?: number;
  /** Interval of the stream's heartbeat comments, ms. Default 15 000. */
  readonly heartbeatMs?: number;
  /** Bytes a slow stream client may leave unread before its stream is ended. Default 1 MiB. */
  readonly streamBufferBytes?: number;
  /** How long `close()` lets requests under way finish before it cuts their connections, ms. Default 10 000. */
  readonly drainTimeoutMs?: number;
  /** Logger of the HTTP layer (errors only; requests are not logged: their URLs carry entity keys). Default: the context's. */
  readonly logger?: Logger;
}

/** Where to listen. */
export interface ListenOptions {
  /** Default `127.0.0.1`: only this machine. Set `0.0.0.0` (with a bearer token) to serve others. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
}

/** A running (or ready) HTTP server of the serving API. */
export interface HttpServer {
  /** The Fastify instance (routes, `inject` for tests, hooks). */
  readonly app: FastifyInstance;
  /** Starts listening; resolves with the address bound. */
  listen(options?: ListenOptions): Promise<{ readonly host: string; readonly port: number; readonly url: string }>;
  /**
   * Drains and stops: no new connections, streams ended, requests under way answered, then closed.
   * For SIGTERM. Idempotent.
   */
  close(): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The serving API on a Fastify app: features by key, request-time predictions, the live prediction
 * stream, the model's description, health, metrics, the OpenAPI document (`/openapi.json`) and the
 * live page (`/`). Every route validates its request by JSON schema (400 naming the field).
 *
 * @example
 * const http = await buildHttpApp(context, { bearerToken: process.env.FEATUREFLOW_TOKEN });
 * await http.listen({ port: 8080 });
 * process.once('SIGTERM', () => void http.close());
 */
export async function buildHttpApp(context: ServingContext, options: HttpAppOptions = {}): Promise<HttpServer> {
  const settings: RouteSettings & StreamSettings = {
    maxWaitMs: options.maxWaitMs ?? 10_000,
    defaultWaitMs: Math.min(options.defaultWaitMs ?? 5_000, options.maxWaitMs ?? 10_000),
    maxKeys: options.maxKeys ?? 1_000,
    heartbeatMs: options.heartbeatMs ?? 15_000,
    streamBufferBytes: options.streamBufferBytes ?? 1 << 20,
  };
  const bodyLimit = options.bodyLimit ?? 1 << 20;
  const logger = (options.logger ?? context.logger)?.child({ component: 'http' });
  const app = Fastify({
    bodyLimit,
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    // Requests are not logged: their URLs and bodies carry entity keys.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 1_000 },
    // Unknown body fields are errors naming them rather than silently dropped.
    ajv: { customOptions: { removeAdditional: false, allowUnionTypes: true } },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'featureflow serving API',
        description:
          'Online features, request-time and event-driven predictions; every answer says which position it reflects.',
        version: '1',
      },
      tags: [
        { name: 'features', description: 'Online feature values' },
        { name: 'predictions', description: 'Model predictions' },
        { name: 'operations', description: 'Health and metrics' },
      ],
      ...(options.bearerToken
        ? {
            components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
            security: [{ bearer: [] }],
          }
        : {}),
    },
  });
  app.addSchema(ERROR_SCHEMA);

  // Requests under way (streams included), for close() to wait for.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  app.addHook('onRequest', async (_request, reply) => {
    inFlight++;
    reply.raw.once('close', () => {
      if (--inFlight === 0) drained?.();
    });
  });

  if (options.bearerToken) {
    const expected = sha256(`Bearer ${options.bearerToken}`);
    app.addHook('onRequest', async (request, reply) => {
      const route = request.routeOptions.url;
      if (route === '/health' || (route !== undefined && PUBLIC_PAGE_ROUTES.has(route))) return;
      // Compared as digests: equal lengths, and no timing hint of how much of the token matched.
      const given = request.headers.authorization;
      if (given !== undefined && timingSafeEqual(sha256(given), expected)) return;
      reply.header('www-authenticate', 'Bearer');
      throw new ServingError(
        'FF_SERVE_UNAUTHORIZED',
        given === undefined
          ? 'this server needs a bearer token: send Authorization: Bearer <token>'
          : 'the bearer token is not the configured one',
        401,
      );
    });
  }

  // Once closing, answers end their connections, so that close() does not wait out keep-alive timeouts.
  let closing: Promise<void> | undefined;
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    context.metrics.httpDuration.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body } = errorBody(error, bodyLimit);
    if (status >= 500 && !(error instanceof FeatureflowError && error.retriable)) {
      logger?.error({ err: error, method: request.method, route: request.routeOptions.url }, 'request failed');
    }
    reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const message = `no route ${request.method} ${request.url.split('?')[0]}; the routes are listed at /openapi.json`;
    reply.code(404).send({ statusCode: 404, error: STATUS_TEXT[404], code: 'FF_SERVE_NOT_FOUND', message });
  });

  featureRoutes(app, context, settings);
  modelRoutes(app, context);
  predictRoutes(app, context, settings);
  const streams = new Set<() => void>();
  streamRoutes(app, context, settings, streams);
  opsRoutes(app, context);
  pageRoutes(app);
  // Open streams would keep the server from closing: end them first (clients reconnect elsewhere).
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  await app.ready();

  return {
    app,
    async listen(listen: ListenOptions = {}) {
      const host = listen.host ?? '127.0.0.1';
      await app.listen({ host, port: listen.port ?? 8080 });
      const address = app.server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      logger?.info({ host: address.address, port: address.port }, 'serving HTTP');
      return { host: address.address, port: address.port, url: `http://${shown}:${address.port}` };
    },
    close() {
      closing ??= (async () => {
        // Stops accepting, answers 503 to requests arriving on open connections, ends the streams.
        const closed = app.close();
        if (inFlight > 0) {
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            drained = resolve;
            timer = setTimeout(resolve, options.drainTimeoutMs ?? 10_000);
          });
          clearTimeout(timer);
        }
        // What is left is idle (kept alive) or stuck past the drain timeout.
        app.server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

/** The status and body of an error response. */
function errorBody(error: FastifyError, bodyLimit: number): { status: number; body: Record<string, unknown> } {
  const make = (status: number, code: string, message: string, details: Record<string, unknown> = {}) => ({
    status,
    body: { statusCode: status, error: STATUS_TEXT[status] ?? 'Error', code, message, ...details },
  });
  if (error.validation) {
    const first = error.validation[0];
    const params = (first?.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
    const extra = params.missingProperty ?? params.additionalProperty;
    const field = `${error.validationContext ?? 'request'}${first?.instancePath ?? ''}${extra ? `/${extra}` : ''}`;
    const message = params.additionalProperty ? `${field} is not a known field` : error.message;
    return make(400, 'FF_SERVE_BAD_REQUEST', message, { field });
  }
  if (error instanceof ServingError) return make(error.statusCode, error.code, error.message, { ...error.details });
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return make(
      413,
      'FF_SERVE_TOO_LARGE',
      `the request body is larger than ${bodyLimit} bytes; send fewer keys or rows per request, or raise the bodyLimit option`,
    );
  }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return make(415, 'FF_SERVE_BAD_REQUEST', `${error.message}; send Content-Type: application/json`, {
      field: 'headers/content-type',
    });
  }
  if (error instanceof FeatureflowError) {
    // An example the model cannot take is the request's fault; a store or scorer that fails for now is ours, for now.
    if (error.code === 'FF_MODEL_INPUT') return make(400, 'FF_SERVE_BAD_REQUEST', error.message, { cause: error.code });
    if (error.retriable) return make(503, error.code, error.message);
    return make(500, error.code, error.message);
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return make(error.statusCode, 'FF_SERVE_BAD_REQUEST', `body ${error.message}`, { field: 'body' });
  }
  return make(500, 'FF_SERVE_FAILED', `the request failed unexpectedly (${error.message}); see the server's log`);
}
