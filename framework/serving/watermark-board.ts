import type { FeatureView } from '../features/feature-view.js';
import type { Position } from '../types.js';

interface Waiter {
  readonly view: FeatureView;
  readonly position: Position;
  readonly resolve: (reached: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

/** A view version's identity as the online side keys it. */
export function viewId(view: Pick<FeatureView, 'name' | 'version'>): string {
  return `${view.name}@${view.version}`;
}

/**
 * The positions through which this process has written each served view to the online store, in
 * memory, so a request can wait for its own write to be visible (read-after-write) without polling
 * the store. The online updater advances it after each watermark it sets.
 */
export class WatermarkBoard {
  private readonly positions = new Map<string, Position>();
  private readonly waiters = new Map<string, Waiter[]>();
  private closed = false;
  private source: { read: (view: FeatureView) => Promise<Position | null>; everyMs: number } | undefined;
  private polling: NodeJS.Timeout | undefined;

  /**
   * Also learns positions from `read` (the shared online store's watermark), every `everyMs` while
   * someone waits: on a bus between processes, other processes move a view's watermark too (the
   * parts of its stream they consume), and this process hears of it only from the store.
   */
  follow(read: (view: FeatureView) => Promise<Position | null>, everyMs = 25): void {
    this.source = { read, everyMs };
  }

  /** Reads the watermark of every view waited for, advances the board, and polls again while waiters remain. */
  private poll(): void {
    if (!this.source || this.polling || this.closed || this.waiters.size === 0) return;
    const { read, everyMs } = this.source;
    this.polling = setTimeout(async () => {
      const views = [...this.waiters.values()].map((list) => list[0]!.view);
      await Promise.all(
        views.map(async (view) => {
          const mark = await read(view).catch(() => null);
          if (mark !== null) this.advance(view, mark);
        }),
      );
      this.polling = undefined;
      this.poll();
    }, everyMs);
  }

  /** The position through which `view` is current, or null before anything was loaded or written. */
  get(view: FeatureView): Position | null {
    return this.positions.get(viewId(view)) ?? null;
  }

  /** Records that `view` is current through `position` (never moves back) and wakes the waiters it satisfies. */
  advance(view: FeatureView, position: Position): void {
    const id = viewId(view);
    const known = this.positions.get(id);
    if (known !== undefined && known >= position) return;
    this.positions.set(id, position);
    const waiting = this.waiters.get(id);
    if (!waiting) return;
    const still = waiting.filter((w) => {
      if (w.position > position) return true;
      clearTimeout(w.timer);
      w.resolve(true);
      return false;
    });
    if (still.length > 0) this.waiters.set(id, still);
    else this.waiters.delete(id);
  }

  /**
   * Resolves true once `view` is current through `position`, or false after `timeoutMs` (or when the
   * board closes). Immediate when it already is.
   */
  waitFor(view: FeatureView, position: Position, timeoutMs: number): Promise<boolean> {
    const known = this.get(view);
    if (known !== null && known >= position) return Promise.resolve(true);
    if (this.closed || timeoutMs <= 0) return Promise.resolve(false);
    const id = viewId(view);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        view,
        position,
        resolve,
        timer: setTimeout(() => {
          const list = this.waiters.get(id);
          const at = list?.indexOf(waiter) ?? -1;
          if (at >= 0) list!.splice(at, 1);
          if (list?.length === 0) this.waiters.delete(id);
          resolve(false);
        }, timeoutMs),
      };
      const list = this.waiters.get(id);
      if (list) list.push(waiter);
      else this.waiters.set(id, [waiter]);
      this.poll();
    });
  }

  /** Waiters still waiting (for metrics and tests). */
  get waiting(): number {
    let n = 0;
    for (const list of this.waiters.values()) n += list.length;
    return n;
  }

  /** Resolves every waiter with false; later waits resolve false at once unless already satisfied. */
  close(): void {
    this.closed = true;
    clearTimeout(this.polling);
    for (const list of this.waiters.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        w.resolve(false);
      }
    }
    this.waiters.clear();
  }
}
