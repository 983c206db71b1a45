import { cpus } from 'node:os';

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

/** The machine's CPU time so far, every core's summed (ms): busy and in all. See {@link busyShare}. */
export interface CpuTimes {
  readonly busy: number;
  readonly total: number;
}

export function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

/** The share (0–1) of the machine's CPU time that was busy between two readings of {@link cpuTimes}. */
export function busyShare(from: CpuTimes, to: CpuTimes): number {
  return (to.busy - from.busy) / (to.total - from.total);
}
