import type { ChangeLog, ChangePublisher } from '../interfaces/index.js';
import type { Change, Position, VersionedSchema } from '../types.js';

/**
 * Hands a publisher every change the log committed after the position it last sent, then records
 * the newest commit position sent. A stop between the send and the record sends those changes again
 * on the next run: delivery is at least once. The log's checkpoint bounds the run, so it ends on a
 * transaction boundary. Returns the checkpoint it sent through (everything the log holds up to it).
 */
export async function publishCommitted(
  log: ChangeLog,
  publisher: ChangePublisher,
  tables: readonly string[],
): Promise<Position | null> {
  const from = (await log.published(publisher.id)) ?? 0n;
  const state = await log.state();
  const through = state.checkpoint;
  if (through === null || through <= from) return through;
  let last: Position | null = null;
  async function* pages(): AsyncGenerator<readonly Change[]> {
    for await (const page of log.changesAfter(from, tables)) {
      const committed = page.filter((c) => c.commitPosition <= through!);
      if (committed.length === 0) continue;
      last = committed.at(-1)!.commitPosition;
      yield committed;
    }
  }
  await publisher.publish({ pages: pages(), schemas: await log.schemas(), tables });
  // Snapshot batches carry the checkpoint as their commit position, so `last` is at most `through`.
  await log.savePublished(publisher.id, last ?? through);
  return through;
}

/** Changes the log has just committed, in commit order, with what a publisher needs to send them. */
export interface FreshChanges {
  /** The changes of the captured tables, in commit order (whole transactions). */
  readonly changes: readonly Change[];
  readonly schemas: readonly VersionedSchema[];
  readonly tables: readonly string[];
}

/**
 * Hands a publisher the changes of one commit of the log as they were in memory, when it has sent
 * everything the log held before them: the same records {@link publishCommitted} would read back,
 * without reading them. Returns the newest commit position sent (null when there was nothing to
 * send), for the caller to record with the log's next commit.
 */
export async function publishFresh(publisher: ChangePublisher, fresh: FreshChanges): Promise<Position | null> {
  const { changes, schemas, tables } = fresh;
  if (changes.length === 0) return null;
  async function* pages(): AsyncGenerator<readonly Change[]> {
    yield changes;
  }
  await publisher.publish({ pages: pages(), schemas, tables });
  return changes.at(-1)!.commitPosition;
}
