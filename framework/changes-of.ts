import { rowReader } from './column-values.js';
import type { Change, ChangeBatch, Op, Row, RowGroup, VersionedSchema } from './types.js';

/** The schema of a table version, as the change log knows it. */
export type SchemaLookup = (table: string, version: number) => VersionedSchema | undefined;

/** The changes of one group's rows, in row order, as Changes. */
function groupChanges(group: RowGroup, schema: VersionedSchema): Change[] {
  const read = rowReader(schema.columns, group.rows);
  const keys = schema.keyColumns;
  const out: Change[] = new Array(group.indexes.length);
  for (let i = 0; i < out.length; i++) {
    const row = read(i);
    const key: Row = {};
    for (const k of keys) key[k] = row[k] ?? null;
    const op = String.fromCharCode(group.ops[i]!) as Op;
    const deleted = op === 'd';
    out[i] = {
      table: group.table,
      op,
      key,
      // A delete's old row is what the replica identity gives: its key columns (every column under FULL),
      // as the source decodes it; the group's other columns are null placeholders.
      before: deleted ? { ...key } : null,
      after: deleted ? null : row,
      position: group.positions[i]!,
      commitPosition: group.commitPositions[i]!,
      commitTime: group.commitTimes[i]!,
      xid: group.xids[i * 2]!,
      schemaVersion: group.schemaVersion,
    };
  }
  return out;
}

/**
 * Every change of a batch (of `tables` only, when given), in commit order, as {@link Change}s: the
 * group rows decoded from their columns, merged with the batch's other changes by their index.
 */
export function changesOf(batch: ChangeBatch, schemaOf: SchemaLookup, tables?: ReadonlySet<string>): Change[] {
  const slots: (Change | undefined)[] = new Array(batch.size);
  let any = false;
  for (const group of batch.groups) {
    if (tables && !tables.has(group.table)) continue;
    const schema = schemaOf(group.table, group.schemaVersion);
    if (!schema) throw new Error(`rows of ${group.table} arrived before its schema (version ${group.schemaVersion})`);
    const changes = groupChanges(group, schema);
    for (let i = 0; i < changes.length; i++) slots[group.indexes[i]!] = changes[i];
    any ||= changes.length > 0;
  }
  batch.changes.forEach((change, i) => {
    if (tables && !tables.has(change.table)) return;
    slots[batch.changeIndexes[i]!] = change;
    any = true;
  });
  if (!any) return [];
  return slots.filter((c): c is Change => c !== undefined);
}
