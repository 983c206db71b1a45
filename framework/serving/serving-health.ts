/** What `GET /health` answers. */
export interface HealthReport {
  /** True once the online store is loaded and while nothing critical is wrong. */
  readonly ready: boolean;
  /** `ready`; `degraded` when ready but something non-critical fails (scoring, a prediction sink); else `not_ready`. */
  readonly status: 'ready' | 'degraded' | 'not_ready';
  /** Why it is not ready (or degraded); null when all is well. */
  readonly reason: string | null;
  /** Every current problem, by component. */
  readonly problems: Readonly<Record<string, string>>;
  readonly loaded: boolean;
}

interface Problem {
  readonly reason: string;
  readonly critical: boolean;
}

/**
 * The serving side's readiness: not ready until the online store is loaded, and not while a
 * component reports a critical problem (the online store unreachable). Components set and clear
 * their own problem, with the reason a user can act on.
 */
export class ServingHealth {
  private loadedAt: number | null = null;
  private readonly problems = new Map<string, Problem>();

  /** True once {@link markLoaded} was called. */
  get loaded(): boolean {
    return this.loadedAt !== null;
  }

  /** Records that the online store holds every served view (loaded or found loaded). */
  markLoaded(): void {
    this.loadedAt ??= Date.now();
  }

  /**
   * Sets (or, with `reason` null, clears) the problem of `component`. A critical problem makes the
   * process not ready; another one makes it `degraded`.
   */
  set(component: string, reason: string | null, options: { readonly critical?: boolean } = {}): void {
    if (reason === null) this.problems.delete(component);
    else this.problems.set(component, { reason, critical: options.critical ?? true });
  }

  /** The current problem of `component`, or null. */
  problem(component: string): string | null {
    return this.problems.get(component)?.reason ?? null;
  }

  report(): HealthReport {
    const problems = Object.fromEntries([...this.problems].map(([c, p]) => [c, p.reason]));
    const critical = [...this.problems.values()].find((p) => p.critical);
    if (!this.loaded) {
      return {
        ready: false,
        status: 'not_ready',
        reason: critical?.reason ?? 'the online store is loading',
        problems,
        loaded: false,
      };
    }
    if (critical) return { ready: false, status: 'not_ready', reason: critical.reason, problems, loaded: true };
    const other = [...this.problems.values()][0];
    return { ready: true, status: other ? 'degraded' : 'ready', reason: other?.reason ?? null, problems, loaded: true };
  }
}
