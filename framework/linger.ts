/**
 * Paces a group-commit loop (Kafka's `linger.ms`): a commit starts at least `intervalMs` after the
 * previous one started, so what arrives meanwhile joins one group. Each commit has a fixed cost
 * (DuckDB's appender flushes plan and run an insert on the calling thread); committing as fast as
 * possible makes groups of one and keeps the event loop busy with that cost, delaying the changes
 * and requests that arrive meanwhile. A caller that waits for the commit, or a full queue, hurries
 * the loop: the wait ends at once.
 *
 * @example
 * const linger = new Linger(50);
 * while (queue.length > 0) {
 *   await linger.wait(() => settling > 0);
 *   await commit(queue.splice(0));
 * }
 */
export class Linger {
  private last = Number.NEGATIVE_INFINITY;
  private cut: (() => void) | undefined;

  /** `intervalMs` 0 commits as soon as the previous commit ends. */
  constructor(private readonly intervalMs: number) {}

  /** Waits until `intervalMs` after the previous start unless `hurried()` holds (now or at a {@link hurry}); marks a start. */
  async wait(hurried: () => boolean): Promise<void> {
    const remaining = this.last + this.intervalMs - performance.now();
    if (remaining > 0 && !hurried()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, remaining);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.cut = () => {
          if (hurried()) done();
        };
      });
      this.cut = undefined;
    }
    this.last = performance.now();
  }

  /** Ends the wait under way if its `hurried()` now holds. */
  hurry(): void {
    this.cut?.();
  }
}

/**
 * Lets the event loop run what waits (socket reads, timers) before the caller goes on: between the
 * synchronous steps of a commit (appender flushes), so a commit never holds back a change that
 * arrives meanwhile for longer than one step.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
