import { FeatureflowError } from '../errors.js';

/**
 * A coded error of the serving API with the HTTP status it answers with, and details the response
 * body carries besides the message (the field at fault, the position a request waited for…).
 */
export class ServingError extends FeatureflowError {
  constructor(
    code:
      | 'FF_SERVE_BAD_REQUEST'
      | 'FF_SERVE_NOT_FOUND'
      | 'FF_SERVE_UNAUTHORIZED'
      | 'FF_SERVE_TOO_LARGE'
      | 'FF_SERVE_TIMEOUT'
      | 'FF_SERVE_NOT_READY',
    message: string,
    readonly statusCode: number,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code, message);
    this.name = 'ServingError';
  }
}

/** 400, naming the request field at fault (`body/keys/0/1`, `params/key`…). */
export function badRequest(field: string, message: string): ServingError {
  return new ServingError('FF_SERVE_BAD_REQUEST', `${field} ${message}`, 400, { field });
}

/** 404. */
export function notFound(message: string, details?: Record<string, unknown>): ServingError {
  return new ServingError('FF_SERVE_NOT_FOUND', message, 404, details);
}

/** 404: predictions asked of a process without a model. */
export function noModel(): ServingError {
  return notFound(
    'no model is configured, so nothing can be predicted; set `model` in featureflow.config.ts and restart serve',
  );
}
