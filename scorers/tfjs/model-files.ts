/**
 * A TF.js model on disk: `model.json`, the weight files its manifest lists, and an optional
 * `manifest.json` (version, class labels). Pure @tensorflow/tfjs has no file:// loader or saver in
 * Node, so the files are read and written here.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { modelLoadError as loadError } from './tfjs-errors.js';

/** `manifest.json` beside `model.json`: what the scorer reads, plus anything the training script keeps. */
export interface ModelManifest {
  /** The model's version, as predictions record it. */
  readonly version?: string;
  /** Class labels, one per output of a classifier, in output order. */
  readonly labels?: readonly string[];
  readonly [key: string]: unknown;
}

/** A model directory read into memory. */
export interface ModelFiles {
  /** The parsed `model.json`. */
  readonly modelJson: Record<string, unknown>;
  /** Every weight file of the manifest, concatenated in manifest order (as TF.js's own loaders do). */
  readonly weights: ArrayBuffer;
  readonly manifest?: ModelManifest;
  /** SHA-256 of `model.json` and the weight files (12 hex digits). */
  readonly digest: string;
}

const MODEL_JSON = 'model.json';
const MANIFEST_JSON = 'manifest.json';
const WEIGHTS_BIN = 'weights.bin';

async function readJson(
  file: string,
  what: string,
  fix: string,
): Promise<{ bytes: Buffer; value: unknown } | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw loadError(`${what} ${file} cannot be read (${(error as Error).message}); ${fix}`, error);
  }
  try {
    return { bytes, value: JSON.parse(bytes.toString('utf8')) };
  } catch (error) {
    throw loadError(`${what} ${file} is not valid JSON (${(error as Error).message}); ${fix}`, error);
  }
}

function checkManifest(value: unknown, file: string): ModelManifest {
  const fix = `fix ${MANIFEST_JSON}, or remove it`;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw loadError(`${file} must hold a JSON object; ${fix}`);
  const manifest = value as ModelManifest;
  if (manifest.version !== undefined && (typeof manifest.version !== 'string' || manifest.version === '')) {
    throw loadError(`${file}: version must be a non-empty string, got ${JSON.stringify(manifest.version)}; ${fix}`);
  }
  if (
    manifest.labels !== undefined &&
    !(Array.isArray(manifest.labels) && manifest.labels.every((l) => typeof l === 'string'))
  ) {
    throw loadError(`${file}: labels must be an array of strings; ${fix}`);
  }
  return manifest;
}

/** Bytes per element of a weight as stored (quantized weights are smaller), or undefined when variable (strings). */
function storedBytes(spec: TF.io.WeightsManifestEntry): number | undefined {
  const q = spec.quantization?.dtype;
  if (q) return q === 'uint8' ? 1 : 2;
  return ({ float32: 4, int32: 4, bool: 1, complex64: 8 } as Record<string, number | undefined>)[spec.dtype];
}

/**
 * Reads a model directory: `model.json`, its weight files, `manifest.json` when present. Fails with
 * `FF_MODEL_LOAD` naming the file and the fix.
 */
export async function readModelFiles(dir: string): Promise<ModelFiles> {
  const root = resolve(dir);
  const modelFile = join(root, MODEL_JSON);
  const fix = 'write the model with saveModel (or tensorflowjs_converter) into that directory, or point path at one';
  const model = await readJson(modelFile, 'the model file', fix);
  if (!model) throw loadError(`the model directory ${root} has no ${MODEL_JSON}; ${fix}`);
  const json = model.value as Record<string, unknown>;
  if (
    typeof json !== 'object' ||
    json === null ||
    typeof json.modelTopology !== 'object' ||
    json.modelTopology === null
  ) {
    throw loadError(`${modelFile} has no modelTopology, so it is not a TF.js model; ${fix}`);
  }
  const groups = (json.weightsManifest ?? []) as TF.io.WeightsManifestConfig;
  if (!Array.isArray(groups))
    throw loadError(`${modelFile}: weightsManifest must be an array of weight groups; ${fix}`);
  const hash = createHash('sha256').update(model.bytes);
  const parts: Buffer[] = [];
  for (const group of groups) {
    for (const path of group.paths ?? []) {
      const file = resolve(root, path);
      if (isAbsolute(path) || relative(root, file).startsWith('..')) {
        throw loadError(
          `${modelFile} lists the weight file ${JSON.stringify(path)} outside its directory; keep the weight files beside model.json`,
        );
      }
      try {
        parts.push(await readFile(file));
      } catch (error) {
        throw loadError(
          `the weight file ${file} listed in ${modelFile} cannot be read (${(error as Error).message}); copy every file of the model's directory`,
          error,
        );
      }
      hash.update(parts[parts.length - 1]!);
    }
  }
  const weights = Buffer.concat(parts);
  const specs = groups.flatMap((g) => g.weights ?? []);
  const sizes = specs.map((s) => storedBytes(s));
  if (sizes.every((b) => b !== undefined)) {
    const expected = specs.reduce((sum, s, i) => sum + sizes[i]! * s.shape.reduce((a, b) => a * b, 1), 0);
    if (expected !== weights.length) {
      throw loadError(
        `the weight files of ${modelFile} hold ${weights.length} bytes and its manifest needs ${expected}; the files are truncated or belong to another model.json: save the model again`,
      );
    }
  }
  const manifestFile = join(root, MANIFEST_JSON);
  const manifest = await readJson(manifestFile, 'the manifest', `fix ${MANIFEST_JSON}, or remove it`);
  return {
    modelJson: json,
    // A copy of exactly these bytes: a Buffer may be a view into a larger pooled ArrayBuffer.
    weights: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer,
    ...(manifest ? { manifest: checkManifest(manifest.value, manifestFile) } : {}),
    digest: hash.digest('hex').slice(0, 12),
  };
}

/** Anything TF.js can save: a `LayersModel` or a `GraphModel`. */
export interface SaveableModel {
  save(handler: TF.io.IOHandler): Promise<TF.io.SaveResult>;
}

/**
 * Writes a model as `model.json` + `weights.bin` into `dir` (created if missing), and `manifest.json`
 * when given: the layout the TF.js scorer loads.
 *
 * @example
 * await model.fit(x, y, { epochs: 5 });
 * await saveModel(model, 'models/digits', { version: '2024-06-01', labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
 */
export async function saveModel(model: SaveableModel, dir: string, manifest?: ModelManifest): Promise<void> {
  const tf = await import('@tensorflow/tfjs');
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const buffers = data === undefined ? [] : Array.isArray(data) ? data : [data];
      const weights = Buffer.concat(buffers.map((b) => new Uint8Array(b)));
      // model.json as TF.js's own savers write it: the artifacts, with the weight specs moved into weightsManifest.
      const { weightData: _data, weightSpecs, ...rest } = artifacts;
      const json = { ...rest, weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: weightSpecs ?? [] }] };
      await writeFile(join(root, WEIGHTS_BIN), weights);
      // A manifest left by an earlier model would lend this one its version and labels.
      if (manifest) await writeFile(join(root, MANIFEST_JSON), `${JSON.stringify(manifest, null, 2)}\n`);
      else await rm(join(root, MANIFEST_JSON), { force: true });
      await writeFile(join(root, MODEL_JSON), JSON.stringify(json));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weights.length,
        },
      };
    }),
  );
}
