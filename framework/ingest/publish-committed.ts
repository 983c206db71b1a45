import type { ChangeLog, ChangePublisher } from '../interfaces/index.js';
import type { Change, Position } from '../types.js';

/**
 * Hands a publisher every change the log committed after the position it last sent, then records
 * the newest commit position sent. A stop between the send and the record sends those changes again
 * on the next run: delivery is at least once. The log's checkpoint bounds the run, so it ends on a
 * transaction boundary. Returns how many changes were sent.
 */
export async function publishCommitted(
  log: ChangeLog,
  publisher: ChangePublisher,
  tables: readonly string[],
): Promise<number> {
  const from = (await log.published(publisher.id)) ?? 0n;
  const state = await log.state();
  const through = state.checkpoint;
  if (through === null || through <= from) return 0;
  let last: Position | null = null;
  let sent = 0;
  async function* pages(): AsyncGenerator<readonly Change[]> {
    for await (const page of log.changesAfter(from, tables)) {
      const committed = page.filter((c) => c.commitPosition <= through!);
      if (committed.length === 0) continue;
      last = committed.at(-1)!.commitPosition;
      sent += committed.length;
      yield committed;
    }
  }
  await publisher.publish({ pages: pages(), schemas: await log.schemas(), tables });
  // Snapshot batches carry the checkpoint as their commit position, so `last` is at most `through`.
  await log.savePublished(publisher.id, last ?? through);
  return sent;
}
