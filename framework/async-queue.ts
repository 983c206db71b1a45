/**
 * An unbounded FIFO between a push-style producer (socket events) and an async consumer. The producer
 * watches {@link length} to apply back-pressure; {@link fail} wakes the consumer with an error.
 */
export class AsyncQueue<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: (() => void) | undefined;
  private error: unknown;
  private ended = false;

  /** True once {@link end} was called and every item was taken. */
  get done(): boolean {
    return this.ended && this.length === 0;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** The next item without taking it. */
  peek(): T | undefined {
    return this.length > 0 ? this.items[this.head] : undefined;
  }

  push(item: T): void {
    this.items.push(item);
    this.wake();
  }

  /** Ends the queue with an error: the consumer gets it after the items already queued. */
  fail(error: unknown): void {
    if (this.error === undefined) this.error = error ?? new Error('queue failed');
    this.wake();
  }

  /** Ends the queue normally. */
  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Takes the next item, waiting for one; throws the failure, or returns undefined once ended. */
  async take(timeoutMs?: number): Promise<T | undefined> {
    while (this.length === 0) {
      if (this.error !== undefined) throw this.error;
      if (this.ended) return undefined;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = timeoutMs === undefined ? undefined : setTimeout(() => resolve(false), timeoutMs);
        this.waiter = () => {
          if (timer) clearTimeout(timer);
          resolve(true);
        };
      });
      this.waiter = undefined;
      if (!woken) return undefined;
    }
    const item = this.items[this.head]!;
    this.items[this.head] = undefined as T;
    this.head += 1;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
