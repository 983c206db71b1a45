/** `GET /model`: the served model and the features it takes, for clients that show predictions (the live page). */
import type { FastifyInstance } from 'fastify';
import type { FeatureType } from '../../features/feature-types.js';
import type { ServingContext } from '../serving-context.js';
import { noModel } from '../serving-errors.js';
import { ERROR_RESPONSES } from './common.js';

const FEATURE_TYPE_SCHEMA = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['scalar', 'tensor'] },
    dtype: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer' }, description: 'A tensor’s shape (row-major)' },
  },
  required: ['kind', 'dtype'],
} as const;

const MODEL_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    version: { type: 'string' },
    service: { type: 'string', description: 'The feature service whose features the model takes' },
    entity: {
      type: 'object',
      properties: { name: { type: 'string' }, keys: { type: 'array', items: { type: 'string' } } },
      description: "The entity predictions are made for; a prediction's key lists these columns' values",
    },
    inputs: {
      type: 'array',
      description: 'The views the model reads, each with all its features (not only those the model takes)',
      items: {
        type: 'object',
        properties: {
          view: { type: 'string' },
          version: { type: 'integer' },
          selected: { type: 'array', items: { type: 'string' }, description: 'The features the model takes' },
          features: { type: 'object', additionalProperties: FEATURE_TYPE_SCHEMA },
        },
      },
    },
  },
} as const;

function typeJson(type: FeatureType) {
  return type.kind === 'tensor'
    ? { kind: type.kind, dtype: type.dtype, shape: [...type.shape] }
    : { kind: type.kind, dtype: type.dtype };
}

export function modelRoutes(app: FastifyInstance, context: ServingContext): void {
  app.get(
    '/model',
    {
      schema: {
        summary: 'The served model, its entity and the features of the views it reads',
        tags: ['predictions'],
        response: { 200: MODEL_SCHEMA, ...ERROR_RESPONSES },
      },
    },
    async () => {
      const model = context.model;
      if (!model) throw noModel();
      const entity = context.inputs[0]?.view.entity;
      return {
        name: model.name,
        version: model.version,
        service: model.service.name,
        entity: entity ? { name: entity.name, keys: [...entity.keys] } : { name: '', keys: [] },
        inputs: context.inputs.map(({ view, names }) => ({
          view: view.name,
          version: view.version,
          selected: names.map((n) => n.slice(n.indexOf('.') + 1)),
          features: Object.fromEntries(Object.entries(view.features).map(([name, type]) => [name, typeJson(type)])),
        })),
      };
    },
  );
}
