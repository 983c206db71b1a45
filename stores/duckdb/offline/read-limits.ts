import type { DuckDBConnection } from '@duckdb/node-api';
import { FeatureflowError } from '../../../framework/errors.js';
import { quoteLiteral } from '../duckdb-database.js';
import { parseMemory } from './duckdb-offline-store.js';

/** A counting semaphore of reads at once. */
export class Slots {
  private free: number;
  private readonly waiting: { go: () => void; stop: (error: unknown) => void }[] = [];

  constructor(size: number) {
    this.free = size;
  }

  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((go, stop) => this.waiting.push({ go, stop }));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next.go();
    else this.free += 1;
  }

  /** Fails every waiting acquire. */
  closeAll(error: unknown): void {
    for (const w of this.waiting.splice(0)) w.stop(error);
  }
}

/**
 * The instance's DuckDB memory limit raised to the readers' while any read runs, and put back after
 * the last: `memory_limit` is one setting of the whole instance, so concurrent reads share one raise
 * (each setting and restoring its own would undo the other's). The ingest's limit is low on purpose
 * (its RSS); a training set's joins need more.
 */
export class MemoryLease {
  private holders = 0;
  private restore: string | null = null;
  private turn: Promise<void> = Promise.resolve();
  private readonly bytes: number;

  constructor(private readonly limit: string) {
    const bytes = parseMemory(limit);
    if (bytes === undefined)
      throw new FeatureflowError(
        'FF_CONFIG_INVALID',
        `memoryLimit ${JSON.stringify(limit)} must be a size such as "256MB"`,
      );
    this.bytes = bytes;
  }

  acquire(c: DuckDBConnection): Promise<void> {
    return this.serial(async () => {
      if (this.holders++ > 0) return;
      const current = (await c.runAndReadAll(`SELECT current_setting('memory_limit')`)).getRows()[0]![0] as string;
      const bytes = parseMemory(current);
      if (bytes !== undefined && bytes >= this.bytes) return;
      await c.run(`SET GLOBAL memory_limit = ${quoteLiteral(this.limit)}`);
      this.restore = current;
    });
  }

  release(c: DuckDBConnection): Promise<void> {
    return this.serial(async () => {
      this.holders -= 1;
      if (this.holders > 0 || this.restore === null) return;
      const restore = this.restore;
      this.restore = null;
      await c.run(`SET GLOBAL memory_limit = ${quoteLiteral(restore)}`);
    });
  }

  private serial(step: () => Promise<void>): Promise<void> {
    const next = this.turn.then(step);
    this.turn = next.catch(() => undefined);
    return next;
  }
}
