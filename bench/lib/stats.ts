/** Nearest-rank percentile (p in 0–100) of numbers; sorts a copy. NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Median of numbers. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Milliseconds on the machine-wide monotonic clock (CLOCK_MONOTONIC): comparable across processes. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
