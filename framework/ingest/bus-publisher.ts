import type { FeatureRowBatch } from '../features/feature-rows.js';
import type { Materializer } from '../features/materialize.js';
import type { ChangeBus, ChangePublisher, PublishRun } from '../interfaces/index.js';
import type { Position } from '../types.js';

/**
 * A bus between processes as a {@link ChangePublisher}: the changes the log committed, page by page,
 * become feature rows (the same transforms the log's history holds) and go onto the bus after the
 * commit. {@link publishCommitted} keeps the position published through in the change log, so a
 * crash between the commit and the publish publishes those rows again on restart (at least once;
 * the online store and the prediction sinks apply each position once).
 */
export class BusPublisher implements ChangePublisher {
  readonly id: string;

  constructor(
    private readonly bus: ChangeBus,
    private readonly materializer: Materializer,
  ) {
    this.id = bus.publisherId ?? 'bus';
  }

  async publish(run: PublishRun): Promise<void> {
    let pending: { batches: readonly FeatureRowBatch[]; through: Position } | null = null;
    for await (const page of run.pages) {
      if (page.length === 0) continue;
      // A page ends where the log's reader cut it, not always on a commit: the page before the last
      // is sent without `through`, the last one with the newest commit position sent.
      if (pending) await this.send(pending.batches, null);
      pending = { batches: this.materializer.materializeChanges(page).batches, through: page.at(-1)!.commitPosition };
    }
    if (pending) await this.send(pending.batches, pending.through);
  }

  /**
   * Sends the feature rows materialized (once, before the commit) for changes the log has just
   * committed: the rows its history holds, marked current through the commit's checkpoint.
   */
  async publishRows(batches: readonly FeatureRowBatch[], through: Position): Promise<void> {
    await this.send(batches, through);
  }

  private async send(batches: readonly FeatureRowBatch[], through: Position | null): Promise<void> {
    if (batches.length === 0 && through === null) return;
    await this.bus.publish({ batches, through, receivedAt: Date.now() });
  }

  /** The bus is the container's to close. */
  async close(): Promise<void> {}
}
