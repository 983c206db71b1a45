import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerModule } from 'inversify';
import { describe, expect, test } from 'vitest';
import type { PublishAdapter } from '../framework/config.js';
import type { ChangePublisher, PublishRun } from '../framework/interfaces/index.js';
import { FeatureflowError } from '../framework/errors.js';
import { closeContainer, createContainer, defineConfig, duckdb, TOKENS, type Change } from '../index.js';
import { ListSource, listAdapter, SCHEMA } from './list-source.js';

// A commit's send to a publisher goes on while the next group of transactions commits. The sends
// stay one at a time and in commit order; a failed send stops the run, and the next run sends what
// the log holds past the position recorded for the publisher: nothing is skipped.

/** `n` single-row transactions: insert i at position i. */
function inserts(n: number): Change[] {
  return Array.from({ length: n }, (_, i) => {
    const position = BigInt(i + 1);
    return {
      table: SCHEMA.table,
      op: 'c' as const,
      key: { sku: `s${i + 1}` },
      before: null,
      after: { sku: `s${i + 1}`, price: i + 1 },
      position,
      commitPosition: position,
      commitTime: 1_700_000_000_000_000n + position * 1000n,
      xid: i + 1,
      schemaVersion: 1,
    };
  });
}

/** A destination that takes `sendMs` per run, records what it got, and fails its `failAt`-th run with `failure`. */
class SlowPublisher implements ChangePublisher {
  readonly id = 'slow';
  readonly runs: bigint[][] = [];
  /** Runs during which the source was confirmed past the run's last change: a later commit overlapped the send. */
  overlapped = 0;
  private active = 0;
  maxActive = 0;

  constructor(
    private readonly source: ListSource,
    private readonly sendMs: number,
    private failAt = Infinity,
    private readonly failure = () => new Error('the destination went away'),
  ) {}

  async publish(run: PublishRun): Promise<void> {
    this.maxActive = Math.max(this.maxActive, ++this.active);
    try {
      const positions: bigint[] = [];
      for await (const page of run.pages) for (const change of page) positions.push(change.position);
      await new Promise((resolve) => setTimeout(resolve, this.sendMs));
      if (this.runs.length + 1 === this.failAt) {
        this.failAt = Infinity;
        throw this.failure();
      }
      if (this.source.confirmed > positions.at(-1)!) this.overlapped++;
      this.runs.push(positions);
    } finally {
      this.active--;
    }
  }

  async close(): Promise<void> {}
}

function publishTo(publisher: ChangePublisher): PublishAdapter {
  return {
    kind: 'publish',
    name: 'slow',
    module: new ContainerModule(({ bind }) => {
      bind(TOKENS.ChangePublisher).toConstantValue(publisher);
    }),
  };
}

describe('sends to a publisher overlap the next commit', () => {
  test('one at a time, in commit order; after a failed send the next run sends the rest, none skipped', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-overlap-')), 'store.duckdb');
    const changes = inserts(60);
    const base = { store: duckdb({ path }), features: { views: [] }, logLevel: 'silent' as const };

    // Run 1: the third send fails while later transactions commit.
    const first = new ListSource(changes.slice(0, 40), 1, 3);
    const failing = new SlowPublisher(first, 15, 3);
    let container = await createContainer(
      defineConfig({ ...base, source: listAdapter(first), publish: publishTo(failing) }),
    );
    await expect((await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true })).rejects.toThrow(
      /the destination went away/,
    );
    await closeContainer(container);
    expect(failing.maxActive).toBe(1);
    const sentFirst = failing.runs.flat();
    expect(sentFirst).toEqual(sentFirst.map((_, i) => BigInt(i + 1)));

    // Run 2: everything the log holds past what was recorded, then the rest as it commits.
    const second = new ListSource(changes, 1, 3);
    const publisher = new SlowPublisher(second, 15);
    container = await createContainer(
      defineConfig({ ...base, source: listAdapter(second), publish: publishTo(publisher) }),
    );
    const result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    await closeContainer(container);
    expect(result.checkpoint).toBe(60n);
    expect(publisher.maxActive).toBe(1);
    const sent = publisher.runs.flat();
    // In commit order, each once within the run, starting no later than the first change not sent before.
    expect(sent).toEqual([...sent].sort((a, b) => Number(a - b)));
    expect(new Set(sent).size).toBe(sent.length);
    expect(sent[0]).toBeLessThanOrEqual(BigInt(sentFirst.length + 1));
    expect(sent.at(-1)).toBe(60n);
    expect(new Set([...sentFirst, ...sent]).size).toBe(60);
    // The later sends went out while the transactions after them committed.
    expect(publisher.overlapped).toBeGreaterThan(0);
  });

  test('a send that fails with a retriable error: the run reconnects and sends from the log, none skipped', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-overlap-')), 'store.duckdb');
    const source = new ListSource(inserts(60), 1, 3);
    const unreachable = () => new FeatureflowError('FF_KAFKA_UNREACHABLE', 'the broker did not answer');
    const publisher = new SlowPublisher(source, 15, 3, unreachable);
    const config = defineConfig({
      source: listAdapter(source),
      store: duckdb({ path }),
      features: { views: [] },
      publish: publishTo(publisher),
      logLevel: 'silent',
    });
    const container = await createContainer(config);
    const result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    await closeContainer(container);
    expect(result.checkpoint).toBe(60n);
    expect(publisher.maxActive).toBe(1);
    // Each send in order; after the failure, the sends start again at or before the first position not sent.
    const [before, after] = [publisher.runs.slice(0, 2).flat(), publisher.runs.slice(2).flat()];
    expect(before).toEqual(before.map((_, i) => BigInt(i + 1)));
    expect(after).toEqual([...after].sort((a, b) => Number(a - b)));
    expect(new Set(after).size).toBe(after.length);
    expect(after[0]).toBeLessThanOrEqual(BigInt(before.length + 1));
    expect(new Set([...before, ...after]).size).toBe(60);
  });
});
