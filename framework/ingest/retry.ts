import { isRetriable } from '../errors.js';

/**
 * Exponential backoff between attempts: 250 ms, doubling up to a ceiling; reset after a success. The
 * one retry policy of the ingestion engine (KafkaJS's `retry` is the model): it retries exactly the
 * errors whose `retriable` flag is set, and waits no longer once the run is stopped.
 */
export class Backoff {
  static readonly FIRST_MS = 250;
  private delayMs = Backoff.FIRST_MS;

  constructor(private readonly maxMs: number) {}

  /** The wait the next {@link wait} takes. */
  get nextMs(): number {
    return this.delayMs;
  }

  /** Waits the current delay (cut short by `signal`), then doubles it up to the ceiling. */
  async wait(signal?: AbortSignal): Promise<void> {
    await sleep(this.delayMs, signal);
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
  }

  reset(): void {
    this.delayMs = Backoff.FIRST_MS;
  }
}

/**
 * Runs `attempt` until it succeeds, waiting with {@link Backoff} after each retriable failure
 * (`onRetry` hears each one); a failure that is not retriable, or any failure once `signal` is
 * aborted, is thrown.
 */
export async function retry<T>(
  attempt: () => Promise<T>,
  options: {
    readonly maxBackoffMs: number;
    readonly signal?: AbortSignal;
    readonly onRetry?: (error: unknown, waitMs: number) => void;
  },
): Promise<T> {
  const backoff = new Backoff(options.maxBackoffMs);
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetriable(error) || options.signal?.aborted) throw error;
      options.onRetry?.(error, backoff.nextMs);
      await backoff.wait(options.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** The error's code and message, for a log line (never row values). */
export function describeError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e?.code ? `${e.code}: ${e.message ?? ''}` : String(e?.message ?? error);
}
