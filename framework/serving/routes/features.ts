/** `GET /features/:view/:key` and `POST /features`: online feature values by entity key. */
import type { FastifyInstance } from 'fastify';
import type { FeatureView } from '../../features/feature-view.js';
import type { OnlineValue } from '../../interfaces/online-store.js';
import type { Value } from '../../types.js';
import {
  featuresJson,
  keyFromJson,
  keyFromText,
  positionJson,
  timeJson,
  valueJson,
  type Json,
} from '../json-values.js';
import type { ServingContext } from '../serving-context.js';
import { notFound } from '../serving-errors.js';
import {
  awaitPosition,
  ERROR_RESPONSES,
  FEATURE_RESULT_SCHEMA,
  KEY_PART_SCHEMA,
  NULLABLE_POSITION,
  requireLoaded,
  waitQuerySchema,
  type RouteSettings,
  type WaitQuery,
} from './common.js';

const VIEW_NAME = { type: 'string', pattern: '^[a-z][a-z0-9_]{0,62}$', description: "A feature view's name" } as const;
const VERSION = {
  type: 'integer',
  minimum: 1,
  description: "The view's version (default: the highest served)",
} as const;

/** The served view, or 404 naming the served ones. */
export function servedView(context: ServingContext, name: string, version?: number): FeatureView {
  const view = context.view(name, version);
  if (view) return view;
  const served = context.views.map((v) => `${v.name} v${v.version}`).join(', ') || 'none';
  throw notFound(
    `no feature view ${name}${version === undefined ? '' : ` v${version}`} is served (served: ${served})`,
    { view: name },
  );
}

function resultJson(view: FeatureView, key: readonly Value[], online: OnlineValue): Record<string, Json> {
  return {
    key: key.map(valueJson),
    status: online.status,
    values: online.values === null ? null : featuresJson(view, online.values),
    position: positionJson(online.position),
    commitTime: timeJson(online.commitTime),
  };
}

export function featureRoutes(app: FastifyInstance, context: ServingContext, settings: RouteSettings): void {
  const wait = waitQuerySchema(settings);
  const { store } = context;

  app.get<{ Params: { view: string; key: string }; Querystring: WaitQuery & { version?: number } }>(
    '/features/:view/:key',
    {
      schema: {
        summary: 'The online feature values of one entity',
        description:
          "Composite keys are comma-separated in the order of the entity's key columns; each part is read as its column's type. " +
          '404 when the view is not served or holds no entity with the key (never seen, deleted, or truncated).',
        tags: ['features'],
        params: {
          type: 'object',
          properties: {
            view: VIEW_NAME,
            key: { type: 'string', minLength: 1, description: 'The entity key as text, e.g. `42` or `eu,42`' },
          },
          required: ['view', 'key'],
        },
        querystring: { type: 'object', properties: { ...wait, version: VERSION }, additionalProperties: false },
        response: {
          200: {
            type: 'object',
            properties: {
              view: { type: 'string' },
              version: { type: 'integer' },
              ...FEATURE_RESULT_SCHEMA.properties,
              watermark: {
                ...NULLABLE_POSITION,
                description: 'The position through which the view was current when read',
              },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      const view = servedView(context, request.params.view, request.query.version);
      requireLoaded(context);
      await awaitPosition(context, [view], request.query, settings);
      const key = keyFromText(view, request.params.key, context.materializer.latestSchema(view.source), 'params/key');
      // The watermark is asked first: the values read after it reflect at least that position.
      const [mark, [online]] = await Promise.all([store.watermark(view), store.read(view, [key])]);
      const body = {
        view: view.name,
        version: view.version,
        ...resultJson(view, key, online!),
        watermark: positionJson(mark),
      };
      if (online!.status === 'missing') {
        throw notFound(
          `feature view ${view.name} v${view.version} holds no entity with key ${request.params.key} (never seen, deleted, or the view was truncated)`,
          body,
        );
      }
      return body;
    },
  );

  app.post<{ Body: { view: string; version?: number; keys: unknown[][] }; Querystring: WaitQuery }>(
    '/features',
    {
      schema: {
        summary: 'The online feature values of many entities',
        description:
          "Each key is an array of its parts in the order of the entity's key columns. Every entity gets a result, with its status.",
        tags: ['features'],
        querystring: { type: 'object', properties: wait, additionalProperties: false },
        body: {
          type: 'object',
          properties: {
            view: VIEW_NAME,
            version: VERSION,
            keys: {
              type: 'array',
              minItems: 1,
              maxItems: settings.maxKeys,
              items: { type: 'array', minItems: 1, items: KEY_PART_SCHEMA },
            },
          },
          required: ['view', 'keys'],
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              view: { type: 'string' },
              version: { type: 'integer' },
              watermark: {
                ...NULLABLE_POSITION,
                description: 'The position through which the view was current when read',
              },
              results: { type: 'array', items: FEATURE_RESULT_SCHEMA },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      const { body } = request;
      const view = servedView(context, body.view, body.version);
      requireLoaded(context);
      await awaitPosition(context, [view], request.query, settings);
      const schema = context.materializer.latestSchema(view.source);
      const keys = body.keys.map((parts, i) => keyFromJson(view, parts, schema, `body/keys/${i}`));
      const [mark, values] = await Promise.all([store.watermark(view), store.read(view, keys)]);
      return {
        view: view.name,
        version: view.version,
        watermark: positionJson(mark),
        results: values.map((online, i) => resultJson(view, keys[i]!, online)),
      };
    },
  );
}
