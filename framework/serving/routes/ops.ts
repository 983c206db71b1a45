/** `GET /health`, `GET /metrics` and `GET /openapi.json`. */
import type { FastifyInstance } from 'fastify';
import { describeError } from '../../ingest/retry.js';
import type { Position } from '../../types.js';
import { positionJson } from '../json-values.js';
import type { ServingContext } from '../serving-context.js';
import { viewId } from '../watermark-board.js';

/** How long `/health` waits for the online store to answer. */
const PROBE_TIMEOUT_MS = 2_000;

const HEALTH_SCHEMA = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'degraded', 'not_ready'] },
    ready: { type: 'boolean' },
    reason: { type: ['string', 'null'], description: 'Why it is not ready (or degraded)' },
    loaded: { type: 'boolean', description: 'True once the online store was loaded' },
    problems: { type: 'object', additionalProperties: { type: 'string' } },
    watermarks: {
      type: 'object',
      additionalProperties: { type: ['string', 'null'] },
      description: 'Per served view, its watermark in the online store',
    },
    model: { type: ['object', 'null'], properties: { name: { type: 'string' }, version: { type: 'string' } } },
  },
} as const;

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function opsRoutes(app: FastifyInstance, context: ServingContext): void {
  app.get(
    '/health',
    {
      schema: {
        summary: 'Readiness: 200 once the online store is loaded and while it can be reached, else 503 with the reason',
        tags: ['operations'],
        // Open to probes even when a bearer token is configured.
        security: [],
        response: { 200: HEALTH_SCHEMA, 503: HEALTH_SCHEMA },
      },
    },
    async (_request, reply) => {
      const report = context.health.report();
      let { ready, reason, status } = report;
      const watermarks: Record<string, string | null> = {};
      if (report.loaded) {
        try {
          const marks: (Position | null)[] = await within(
            Promise.all(context.views.map((v) => context.store.watermark(v))),
            PROBE_TIMEOUT_MS,
          );
          context.views.forEach((v, i) => {
            watermarks[viewId(v)] = positionJson(marks[i]!);
          });
        } catch (error) {
          ready = false;
          status = 'not_ready';
          reason = `the online store cannot be reached (${describeError(error)})`;
        }
      }
      reply.code(ready ? 200 : 503);
      const model = context.model;
      return {
        status,
        ready,
        reason,
        loaded: report.loaded,
        problems: report.problems,
        watermarks,
        model: model ? { name: model.name, version: model.version } : null,
      };
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['operations'],
        produces: ['text/plain'],
      },
    },
    async (_request, reply) => {
      reply.type(context.metrics.contentType);
      return context.metrics.text();
    },
  );

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
