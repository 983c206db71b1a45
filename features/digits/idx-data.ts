/**
 * Full MNIST from its standard IDX files (http://yann.lecun.com/exdb/mnist/ layout): a big-endian
 * header (magic 0x00000803 for images, 0x00000801 for labels, then one uint32 per dimension), then
 * one unsigned byte per pixel or label. Files may be gzipped (`.gz`, as distributed) or not.
 */
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FeatureflowError } from '../../framework/errors.js';
import { type Digit, PIXELS } from './digit.js';
import './digits-errors.js';

/** The two parts of full MNIST, in the order {@link readIdxDigits} numbers them. */
export const IDX_PARTS = Object.freeze([
  Object.freeze({ images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte', count: 60_000 }),
  Object.freeze({ images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte', count: 10_000 }),
]);

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

function idxError(message: string, cause?: unknown): FeatureflowError {
  return new FeatureflowError('FF_DIGITS_IDX', message, cause === undefined ? undefined : { cause });
}

/** The file of `name` in `dir`: gzipped (`.gz`) if there, else uncompressed; or an error naming both. */
function open(dir: string, name: string): { file: string; stream: Readable } {
  for (const file of [join(dir, `${name}.gz`), join(dir, name)]) {
    if (!existsSync(file)) continue;
    const raw = createReadStream(file);
    return { file, stream: file.endsWith('.gz') ? raw.pipe(createGunzip()).on('close', () => raw.destroy()) : raw };
  }
  throw idxError(
    `${name}.gz (or ${name}) is not in ${dir}; put the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in that directory`,
  );
}

/** Reads an IDX stream as its header's dimensions, then its data in chunks. */
async function* idxChunks(
  file: string,
  stream: Readable,
  magic: number,
  dims: number,
): AsyncGenerator<Buffer | { dims: number[] }> {
  const headerBytes = 4 + 4 * dims;
  let header = Buffer.alloc(0);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (header.length < headerBytes) {
        header = Buffer.concat([header, chunk]);
        if (header.length < headerBytes) continue;
        const found = header.readUInt32BE(0);
        if (found !== magic) {
          throw idxError(
            `${file} starts with 0x${found.toString(16).padStart(8, '0')}, not the IDX magic 0x${magic.toString(16).padStart(8, '0')}; it is not the MNIST file its name says (or not gunzipped correctly)`,
          );
        }
        yield { dims: Array.from({ length: dims }, (_, i) => header.readUInt32BE(4 + 4 * i)) };
        if (header.length > headerBytes) yield header.subarray(headerBytes);
        continue;
      }
      yield chunk;
    }
  } catch (error) {
    if (error instanceof FeatureflowError) throw error;
    throw idxError(`${file} cannot be read (${(error as Error).message}); download it again`, error);
  } finally {
    stream.destroy();
  }
  if (header.length < headerBytes) throw idxError(`${file} ends inside its header; download it again`);
}

/** All of a labels file (one byte per image: 60,000 bytes at most). */
async function readLabels(dir: string, name: string): Promise<Uint8Array> {
  const { file, stream } = open(dir, name);
  const parts: Buffer[] = [];
  let count = 0;
  for await (const part of idxChunks(file, stream, LABELS_MAGIC, 1)) {
    if (Buffer.isBuffer(part)) parts.push(part);
    else count = part.dims[0]!;
  }
  const labels = Buffer.concat(parts);
  if (labels.length !== count)
    throw idxError(`${file} says ${count} labels and holds ${labels.length}; it is truncated: download it again`);
  return labels;
}

/**
 * Full MNIST's 70,000 digits from the IDX files in `dir`, in batches of at most `batchSize`: the
 * 60,000 training images get ids 1…60000 and the 10,000 test images 60001…70000 (see
 * `FULL_MNIST_SPLIT`). Streams the image files: memory holds one batch and the labels.
 */
export async function* readIdxDigits(dir: string, options: { batchSize?: number } = {}): AsyncGenerator<Digit[]> {
  const batchSize = options.batchSize ?? 1000;
  let nextId = 1;
  for (const part of IDX_PARTS) {
    const labels = await readLabels(dir, part.labels);
    const { file, stream } = open(dir, part.images);
    let batch: Digit[] = [];
    let image = new Uint8Array(PIXELS);
    let filled = 0;
    let index = 0;
    let count = 0;
    for await (const chunk of idxChunks(file, stream, IMAGES_MAGIC, 3)) {
      if (!Buffer.isBuffer(chunk)) {
        const [n, rows, cols] = chunk.dims as [number, number, number];
        if (rows * cols !== PIXELS)
          throw idxError(`${file} holds ${rows}×${cols} images, not 28×28; it is not an MNIST image file`);
        if (n !== labels.length)
          throw idxError(`${file} holds ${n} images and ${part.labels} ${labels.length} labels; use files of one set`);
        count = n;
        continue;
      }
      for (let at = 0; at < chunk.length; ) {
        const take = Math.min(PIXELS - filled, chunk.length - at);
        image.set(chunk.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled < PIXELS) continue;
        if (index >= count) throw idxError(`${file} holds more bytes than its header says; download it again`);
        batch.push(Object.freeze({ id: nextId++, label: labels[index++]!, pixels: image }));
        image = new Uint8Array(PIXELS);
        filled = 0;
        if (batch.length === batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
    if (index !== count || filled !== 0)
      throw idxError(
        `${file} holds ${index} of the ${count} images its header says; it is truncated: download it again`,
      );
    if (batch.length > 0) yield batch;
  }
}
