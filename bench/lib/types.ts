/** One figure of a benchmark, next to a reference measured in the same run (see DESIGN.md, Performance). */
export interface BenchResult {
  /** What was measured, e.g. `snapshot 1M mixed rows → change log`. */
  name: string;
  value: number;
  unit: string;
  /** The yardstick measured in the same run on the same machine. */
  reference: { name: string; value: number; unit: string };
  /** value / reference.value (for latencies: ours / reference, lower is better). */
  ratio: number;
  /** The target from the issue, as text, e.g. `≥ 0.5× reference`. */
  target: string;
  pass: boolean;
}

/** Builds a result, computing the ratio. */
export function benchResult(fields: Omit<BenchResult, 'ratio'>): BenchResult {
  return { ...fields, ratio: fields.reference.value === 0 ? NaN : fields.value / fields.reference.value };
}

/** Builds a result whose target is a bound on the ratio; the target's text and `pass` follow from it. */
export function ratioResult(
  fields: Omit<BenchResult, 'ratio' | 'target' | 'pass'>,
  bound: { atLeast: number } | { atMost: number },
): BenchResult {
  const result = benchResult({ ...fields, target: '', pass: false });
  const [sign, limit, pass] =
    'atLeast' in bound
      ? ['≥', bound.atLeast, result.ratio >= bound.atLeast]
      : ['≤', bound.atMost, result.ratio <= bound.atMost];
  return { ...result, target: `${sign} ${limit}×`, pass };
}
