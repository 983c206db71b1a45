/** `POST /predict`: request-time predictions, by entity keys or by raw source rows. */
import type { FastifyInstance } from 'fastify';
import { keyFromJson, numberJson, positionJson, valueJson, type Json } from '../json-values.js';
import { RequestPredictor, type RawRows, type RequestPrediction } from '../predict.js';
import type { ServingContext } from '../serving-context.js';
import { badRequest, noModel } from '../serving-errors.js';
import { viewId } from '../watermark-board.js';
import {
  awaitPosition,
  ERROR_RESPONSES,
  KEY_PART_SCHEMA,
  NULLABLE_POSITION,
  requireLoaded,
  waitQuerySchema,
  type RouteSettings,
  type WaitQuery,
} from './common.js';

function predictionJson(p: RequestPrediction): Record<string, Json> {
  return {
    key: p.key.map(valueJson),
    status: p.status,
    ...(p.output ? { output: p.output.map(numberJson) } : {}),
    ...(p.argmax !== undefined ? { argmax: p.argmax } : {}),
    ...(p.label !== undefined ? { label: p.label } : {}),
    position: positionJson(p.position),
    positions: Object.fromEntries(Object.entries(p.positions).map(([v, pos]) => [v, positionJson(pos)])),
    ...(p.missing ? { missing: [...p.missing] } : {}),
  };
}

export function predictRoutes(app: FastifyInstance, context: ServingContext, settings: RouteSettings): void {
  const predictor = context.scorer ? new RequestPredictor(context) : null;
  app.post<{ Body: { keys?: unknown[][]; rows?: RawRows[] }; Querystring: WaitQuery }>(
    '/predict',
    {
      schema: {
        summary: 'Request-time predictions of the model',
        description:
          'By entity keys (`keys`: the features are read from the online store) or by raw source rows (`rows`: one object per ' +
          "prediction, holding one row per source table of the service's views, turned into features by the same transforms as the ingest). " +
          'Each prediction says which position its features reflect (null for raw rows).',
        tags: ['predictions'],
        querystring: { type: 'object', properties: waitQuerySchema(settings), additionalProperties: false },
        body: {
          type: 'object',
          properties: {
            keys: {
              type: 'array',
              minItems: 1,
              maxItems: settings.maxKeys,
              items: { type: 'array', minItems: 1, items: KEY_PART_SCHEMA },
              description: "Entity keys, each an array of its parts in the order of the entity's key columns",
            },
            rows: {
              type: 'array',
              minItems: 1,
              maxItems: settings.maxKeys,
              items: { type: 'object', additionalProperties: { type: 'object' }, minProperties: 1 },
              description:
                'Per prediction: source table (e.g. `public.digits`) → a row of it (column → value; bytea as "\\\\x…" or an array of bytes)',
            },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              model: { type: 'string' },
              modelVersion: { type: 'string' },
              watermarks: {
                type: ['object', 'null'],
                additionalProperties: NULLABLE_POSITION,
                description:
                  'Per view (`name@version`), the position through which it was current when read (keys only)',
              },
              predictions: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    key: { type: 'array', items: {} },
                    status: { type: 'string', enum: ['ok', 'missing', 'expired'] },
                    output: { type: 'array', items: { type: ['number', 'string'] } },
                    argmax: { type: 'integer' },
                    label: { type: 'string' },
                    position: {
                      ...NULLABLE_POSITION,
                      description: 'The newest position of the features used (null for raw rows)',
                    },
                    positions: { type: 'object', additionalProperties: NULLABLE_POSITION },
                    missing: {
                      type: 'array',
                      items: { type: 'string' },
                      description: 'Features that were absent, `view.feature`',
                    },
                  },
                  required: ['key', 'status', 'position', 'positions'],
                },
              },
            },
          },
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => {
      if (!predictor) throw noModel();
      const { keys, rows } = request.body;
      if ((keys === undefined) === (rows === undefined))
        throw badRequest('body', 'must have either keys or rows (and not both)');
      const model = context.model!;
      const views = context.inputs.map((i) => i.view);
      if (rows) {
        const predictions = await predictor!.byRows(rows);
        return {
          model: model.name,
          modelVersion: model.version,
          watermarks: null,
          predictions: predictions.map(predictionJson),
        };
      }
      requireLoaded(context);
      await awaitPosition(context, views, request.query, settings);
      const first = views[0]!;
      const schema = context.materializer.latestSchema(first.source);
      const parsed = keys!.map((parts, i) => keyFromJson(first, parts, schema, `body/keys/${i}`));
      // Watermarks are asked before the values are read: the values reflect at least them.
      const marks = Promise.all(views.map((v) => context.store.watermark(v)));
      const predictions = predictor!.byKeys(parsed);
      const watermarks = Object.fromEntries((await marks).map((m, i) => [viewId(views[i]!), positionJson(m)]));
      return {
        model: model.name,
        modelVersion: model.version,
        watermarks,
        predictions: (await predictions).map(predictionJson),
      };
    },
  );
}
