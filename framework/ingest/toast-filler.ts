import { FeatureflowError } from '../errors.js';
import { entityId } from '../features/entity-key.js';
import type { ChangeLog } from '../interfaces/index.js';
import type { Change, Row } from '../types.js';

/** The key's identity (see entityId): an int4 and an int8 of the same value are the same row. */
function rowId(key: Row): string {
  return entityId(Object.values(key));
}

function pick(row: Row, keyShape: Row): Row {
  const out: Row = {};
  for (const k of Object.keys(keyShape)) out[k] = row[k] ?? null;
  return out;
}

/**
 * A stage of the ingest, before anything reaches a store: pgoutput sends 'u' for an unchanged TOASTed
 * value in an update, and the change lists such columns in `unchangedToast`; each is filled from the
 * row's previous image: earlier in the batch, else the newest one in the change log. Linear in the
 * batch, with one log lookup per table (an UPDATE of a whole TOASTed table needs every row's image).
 * The only stage that reads back from the store.
 */
export async function fillUnchangedToast(log: ChangeLog, changes: readonly Change[]): Promise<void> {
  if (!changes.some((c) => c.unchangedToast)) return;
  // The newest image per row so far in the batch; then, per change to fill, where its previous image is.
  const latest = new Map<string, Map<string, Change>>();
  const plan: { change: Change; from: Change | { table: string; index: number } }[] = [];
  const lookups = new Map<string, Row[]>();
  for (const change of changes) {
    let rows = latest.get(change.table);
    if (change.op === 't') {
      latest.delete(change.table);
      continue;
    }
    if (change.unchangedToast && change.after) {
      const lookupKey = pick(change.before ?? change.key!, change.key!);
      const earlier = rows?.get(rowId(lookupKey));
      if (earlier) plan.push({ change, from: earlier });
      else {
        const keys = lookups.get(change.table) ?? [];
        lookups.set(change.table, keys);
        plan.push({ change, from: { table: change.table, index: keys.push(lookupKey) - 1 } });
      }
    }
    if (!rows) latest.set(change.table, (rows = new Map()));
    if (change.before && change.key) rows.delete(rowId(pick(change.before, change.key)));
    if (change.after && change.key) rows.set(rowId(change.key), change);
  }
  const found = new Map<string, (Row | null)[]>();
  for (const [table, keys] of lookups) found.set(table, await log.lastRows(table, keys));
  // In batch order, so an image filled here is complete before a later change copies from it.
  for (const { change, from } of plan) {
    const previous = 'op' in from ? from.after : found.get(from.table)![from.index];
    const columns = change.unchangedToast!;
    if (!previous) {
      // Not retriable: the same change would fail again on every reconnect.
      throw new FeatureflowError(
        'FF_TOAST_UNFILLED',
        `an update of ${change.table} left TOASTed columns ${columns.join(', ')} unchanged, but no earlier image ` +
          'of that row is in the change log; set REPLICA IDENTITY FULL on the table so PostgreSQL ' +
          'sends the old values, and take a new snapshot (`featureflow teardown --yes`, then `featureflow ingest`)',
      );
    }
    for (const column of columns) change.after![column] = previous[column] ?? null;
    delete change.unchangedToast;
  }
}
