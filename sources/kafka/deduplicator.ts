import { entityId } from '../../framework/features/entity-key.js';
import type { RecordChange } from './debezium-record.js';

/**
 * Debezium delivers at least once: after a connector restart it sends again the changes after the
 * last offset it flushed, and they land in Kafka a second time. A row's changes have increasing
 * `source.lsn`s in commit order (a second writer of a row waits for the first to commit, so its WAL
 * record comes later), so a streamed change of a row whose LSN is not above the row's last streamed
 * one is such a duplicate. Snapshot reads are told apart by (LSN, key) alone: their LSN is the
 * snapshot's, which a transaction still open during the snapshot may precede. Kept in memory for the
 * run, one entry per row seen (about 100 bytes).
 */
export class Deduplicator {
  private readonly streamed = new Map<string, bigint>();
  private readonly reads = new Map<string, bigint>();

  /** Rows whose last change was a delete. */
  private readonly deleted = new Set<string>();

  /**
   * False when `change` repeats one seen before (and should be skipped). A flattened delete without
   * an LSN (a tombstone) right after the row's delete (`delete.handling.mode=rewrite` sends both) is one.
   */
  fresh(change: RecordChange): boolean {
    if (change.key === null) return true;
    const id = `${change.table}\u0000${entityId(Object.values(change.key))}`;
    if (change.op === 'd') {
      if (change.lsn === null && this.deleted.has(id)) return false;
      this.deleted.add(id);
    } else this.deleted.delete(id);
    if (change.lsn === null) return true;
    const map = change.op === 'r' ? this.reads : this.streamed;
    const last = map.get(id);
    if (last !== undefined && change.lsn <= last) return false;
    map.set(id, change.lsn);
    return true;
  }
}
