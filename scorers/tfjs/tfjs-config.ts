import { basename, resolve } from 'node:path';
import { FeatureflowError } from '../../framework/errors.js';
import type { FeatureService } from '../../framework/features/index.js';
import type { TfjsBackend } from './tfjs-protocol.js';

export type { TfjsBackend } from './tfjs-protocol.js';

/** What `tfjs({ … })` takes: a TF.js model on disk and the feature service it scores. */
export interface TfjsScorerConfig {
  /**
   * Directory holding `model.json` and its weight files (as `saveModel` or `tensorflowjs_converter`
   * write them), and optionally `manifest.json`. Relative to the working directory. Required.
   */
  path: string;
  /** The feature service whose features the model takes, in its order. Required. */
  service: FeatureService;
  /** The model's name, as predictions record it. Default: the directory's name. */
  name?: string;
  /**
   * The model's version, as predictions record it. Default: `version` of `manifest.json` beside
   * `model.json`, else a hash of `model.json` and the weight files.
   */
  version?: string;
  /** Class labels, one per output of a classifier, in output order. Default: `labels` of `manifest.json`, else none. */
  labels?: readonly string[];
  /** Worker threads running the model, one model instance each. Default 1. */
  workers?: number;
  /** Most examples one worker scores in one call of the model (a micro-batch under load). Default 64. */
  maxBatch?: number;
  /**
   * TF.js backend: `node` (`@tensorflow/tfjs-node`, optional), `wasm`, `cpu`, or `auto`: the first of
   * those that loads. Default `auto`.
   */
  backend?: TfjsBackend;
}

/** The configuration with its defaults filled in (version and labels may still come from the model's files); frozen. */
export interface ResolvedTfjsScorerConfig {
  /** Absolute path of the model directory. */
  readonly path: string;
  readonly service: FeatureService;
  readonly name: string;
  readonly version?: string;
  readonly labels?: readonly string[];
  readonly workers: number;
  readonly maxBatch: number;
  readonly backend: TfjsBackend;
}

const BACKENDS: readonly TfjsBackend[] = ['auto', 'node', 'wasm', 'cpu'];
const MAX_WORKERS = 64;
const MAX_BATCH = 4096;

function isCount(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max;
}

/** Validates a {@link TfjsScorerConfig}, fills its defaults and freezes it; every problem is listed in one `FF_CONFIG_INVALID`. */
export function resolveTfjsScorerConfig(config: TfjsScorerConfig): ResolvedTfjsScorerConfig {
  const problems: string[] = [];
  const c = (config ?? {}) as Partial<TfjsScorerConfig>;
  if (typeof c.path !== 'string' || c.path.trim() === '') {
    problems.push('path must name the directory holding model.json, e.g. path: "models/digits"');
  }
  if (c.service?.kind !== 'featureService') {
    problems.push('service must be a feature service, made with featureService({ name, features })');
  }
  if (c.name !== undefined && (typeof c.name !== 'string' || c.name.trim() === '')) {
    problems.push(
      `name must be a non-empty string, got ${JSON.stringify(c.name)}; leave it out to use the directory's name`,
    );
  }
  if (c.version !== undefined && (typeof c.version !== 'string' || c.version.trim() === '')) {
    problems.push(
      `version must be a non-empty string, got ${JSON.stringify(c.version)}; leave it out to read it from manifest.json or hash the model`,
    );
  }
  if (
    c.labels !== undefined &&
    !(Array.isArray(c.labels) && c.labels.length > 0 && c.labels.every((l) => typeof l === 'string'))
  ) {
    problems.push(
      'labels must be a non-empty array of strings, one per class in output order; leave it out to read them from manifest.json',
    );
  }
  if (c.workers !== undefined && !isCount(c.workers, MAX_WORKERS)) {
    problems.push(
      `workers must be an integer from 1 to ${MAX_WORKERS}, got ${JSON.stringify(c.workers)}; one per core the model may use`,
    );
  }
  if (c.maxBatch !== undefined && !isCount(c.maxBatch, MAX_BATCH)) {
    problems.push(
      `maxBatch must be an integer from 1 to ${MAX_BATCH}, got ${JSON.stringify(c.maxBatch)}; 64 suits small models`,
    );
  }
  if (c.backend !== undefined && !BACKENDS.includes(c.backend)) {
    problems.push(
      `backend must be one of ${BACKENDS.map((b) => `'${b}'`).join(', ')}, got ${JSON.stringify(c.backend)}`,
    );
  }
  if (problems.length > 0) {
    throw new FeatureflowError('FF_CONFIG_INVALID', `the tfjs model configuration is invalid: ${problems.join('; ')}`);
  }
  const path = resolve(c.path!);
  return Object.freeze({
    path,
    service: c.service!,
    name: c.name ?? basename(path),
    ...(c.version !== undefined ? { version: c.version } : {}),
    ...(c.labels !== undefined ? { labels: Object.freeze([...c.labels]) } : {}),
    workers: c.workers ?? 1,
    maxBatch: c.maxBatch ?? 64,
    backend: c.backend ?? 'auto',
  });
}
