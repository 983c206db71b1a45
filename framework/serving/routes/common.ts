/** JSON schemas and helpers the routes share. */
import type { FeatureView } from '../../features/feature-view.js';
import { formatPosition, parsePosition } from '../../types.js';
import type { ServingContext } from '../serving-context.js';
import { ServingError } from '../serving-errors.js';
import { viewId } from '../watermark-board.js';

/** What every route module is given. */
export interface RouteSettings {
  /** Longest read-after-write wait a request may ask for, ms. */
  readonly maxWaitMs: number;
  /** The wait when a request gives `minPosition` without `timeoutMs`, ms. */
  readonly defaultWaitMs: number;
  /** Most keys or rows in one request. */
  readonly maxKeys: number;
}

/** A position in its text form. */
export const POSITION_SCHEMA = {
  type: 'string',
  pattern: '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$',
  description: "A position in the source's commit order, `X/Y`: its upper and lower 32 bits in hexadecimal",
} as const;

const NULLABLE_POSITION = { type: ['string', 'null'], description: POSITION_SCHEMA.description } as const;

/** One part of an entity key in JSON. */
export const KEY_PART_SCHEMA = { type: ['string', 'number', 'boolean'] } as const;

/** The query of routes that can wait for a position (read-after-write). */
export function waitQuerySchema(settings: RouteSettings) {
  return {
    minPosition: {
      ...POSITION_SCHEMA,
      description: 'Answer only once the view reflects every change up to this position (read-after-write); else 504',
    },
    timeoutMs: {
      type: 'integer',
      minimum: 0,
      maximum: settings.maxWaitMs,
      description: `How long to wait for minPosition, ms (default ${settings.defaultWaitMs}, at most ${settings.maxWaitMs})`,
    },
  } as const;
}

/** The query a read-after-write route takes. */
export interface WaitQuery {
  readonly minPosition?: string;
  readonly timeoutMs?: number;
}

/** The error body every route answers errors with. */
export const ERROR_SCHEMA = {
  $id: 'ServingError',
  type: 'object',
  description:
    'An error: its HTTP status, featureflow code (see docs/errors.md) and a message naming what failed and the fix',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    code: { type: 'string' },
    message: { type: 'string' },
    field: { type: 'string', description: 'The request field at fault (400)' },
  },
  required: ['statusCode', 'code', 'message'],
  additionalProperties: true,
} as const;

/** The error responses every route may give. */
export const ERROR_RESPONSES = {
  '4xx': { $ref: 'ServingError#' },
  '5xx': { $ref: 'ServingError#' },
} as const;

/** One entity's online values. */
export const FEATURE_RESULT_SCHEMA = {
  type: 'object',
  properties: {
    key: { type: 'array', items: {}, description: "The entity key, in the order of the entity's key columns" },
    status: { type: 'string', enum: ['ok', 'missing', 'expired'] },
    values: {
      type: ['object', 'null'],
      additionalProperties: true,
      description:
        'Feature name → value (tensors as flat row-major arrays, timestamps as ISO 8601); null unless status is ok',
    },
    position: { ...NULLABLE_POSITION, description: 'Position of the change the values (or the deletion) came from' },
    commitTime: { type: ['string', 'null'], description: 'Commit time of that change (ISO 8601, µs, UTC)' },
  },
  required: ['key', 'status', 'values', 'position', 'commitTime'],
} as const;

export { NULLABLE_POSITION };

/** 503 until the online store is loaded: a partly loaded store would answer `missing` for entities it holds. */
export function requireLoaded(context: ServingContext): void {
  if (context.health.loaded) return;
  throw new ServingError('FF_SERVE_NOT_READY', `the online store is still loading; retry once /health is ready`, 503);
}

/**
 * Waits until each view reflects `query.minPosition` (when given), else fails with FF_SERVE_TIMEOUT
 * (504) naming the view, the position and the view's watermark.
 */
export async function awaitPosition(
  context: ServingContext,
  views: readonly FeatureView[],
  query: WaitQuery,
  settings: RouteSettings,
): Promise<void> {
  if (query.minPosition === undefined) return;
  const position = parsePosition(query.minPosition);
  const timeoutMs = query.timeoutMs ?? settings.defaultWaitMs;
  const reached = await Promise.all(views.map((v) => context.board.waitFor(v, position, timeoutMs)));
  const late = views.find((_, i) => !reached[i]);
  if (!late) return;
  const mark = context.board.get(late);
  const watermark = mark === null ? null : formatPosition(mark);
  throw new ServingError(
    'FF_SERVE_TIMEOUT',
    `view ${viewId(late)} did not reach position ${formatPosition(position)} within ${timeoutMs} ms (it reflects ${watermark ?? 'nothing yet'}); ` +
      `retry, or wait longer with timeoutMs (at most ${settings.maxWaitMs})`,
    504,
    { view: viewId(late), minPosition: formatPosition(position), watermark },
  );
}
