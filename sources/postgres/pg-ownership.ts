/**
 * What a change log owns on the server, and the checks that keep it from resuming past a gap or from
 * using, altering or dropping another's slot or publication. PostgreSQL keeps no owner or identity
 * for a slot, so the log records what it created (in its own store, next to its checkpoint) and the
 * WAL position just before it created the slot: a slot of that name whose positions are below it,
 * of another database or plugin, or that the log has no record of, is someone else's.
 */
import type pg from 'pg';
import { FeatureflowError } from '../../framework/errors.js';
import type { SourceRecord } from '../../framework/interfaces/index.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';
import { quoteIdent, quoteTable } from './pg-connection.js';

/** What a change log records of the PostgreSQL objects it created. */
export type PostgresClaim = SourceRecord & {
  readonly kind: 'postgres';
  readonly slot: string;
  /**
   * The WAL insert position (X/Y) read just before the log created its slot: the slot's confirmed
   * position is never below it. `0/0` for a log written before claims were recorded.
   */
  readonly slotCreatedAfter: string;
  readonly publication: string;
  /** True when the log created the publication: it may add tables to it and drop it. */
  readonly publicationOwned: boolean;
};

/** A replication slot as `pg_replication_slots` shows it. */
export interface SlotRow {
  readonly plugin: string | null;
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly confirmed: Lsn | null;
}

/**
 * The claim a stored record makes, or null when the log has none. A record of a log written before
 * claims were recorded holds only the slot it followed (`{ slot }`): that slot is taken as the log's,
 * and so is the publication of the configuration, which that version created or rewrote itself.
 */
export function claimOf(record: SourceRecord | null, publication: string): PostgresClaim | null {
  if (!record) return null;
  if (record.kind === 'postgres') return record as PostgresClaim;
  if (typeof record.slot === 'string')
    return { kind: 'postgres', slot: record.slot, slotCreatedAfter: '0/0', publication, publicationOwned: true };
  return null;
}

export async function readSlot(client: pg.Client, slot: string): Promise<SlotRow | null> {
  const { rows } = await client.query(
    `SELECT s.plugin, d.datname AS database, s.active, s.active_pid, s.confirmed_flush_lsn::text AS confirmed
       FROM pg_replication_slots s LEFT JOIN pg_database d ON d.oid = s.datoid WHERE s.slot_name = $1`,
    [slot],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    plugin: r.plugin,
    database: r.database,
    active: r.active,
    activePid: r.active_pid,
    confirmed: r.confirmed ? parseLsn(r.confirmed) : null,
  };
}

/**
 * Refuses a slot this log did not create, and a slot whose confirmed position is past the log's
 * checkpoint: streaming would start there, and the changes in between are gone for good.
 */
export function checkSlot(args: {
  readonly slot: string;
  readonly row: SlotRow;
  readonly claim: PostgresClaim | null;
  readonly database: string;
  readonly checkpoint: Lsn | null;
  readonly where: string;
}): void {
  const { slot, row, claim, database, checkpoint, where } = args;
  const dropIt = `SELECT pg_drop_replication_slot('${slot.replaceAll("'", "''")}')`;
  const foreign = (why: string) =>
    new FeatureflowError(
      'FF_PG_SLOT_FOREIGN',
      `replication slot ${slot} on ${where} ${why}, so this change log did not create it: another featureflow change log ` +
        `or another tool uses it, and taking it over would lose that one's changes. Set postgres({ slot }) to a name of its own ` +
        `(each change log needs its own slot), or, if nothing uses that slot any more, drop it first: ${dropIt}`,
    );
  if (!claim || claim.slot !== slot) throw foreign('exists and this change log has no record of creating it');
  if (row.plugin !== 'pgoutput' || row.database !== database) {
    throw foreign(
      `belongs to ${row.database === null ? 'no database (a physical slot)' : `database ${row.database}`} with plugin ${row.plugin ?? 'none'}`,
    );
  }
  if (row.confirmed !== null && row.confirmed < parseLsn(claim.slotCreatedAfter)) {
    throw foreign(
      `is at ${formatLsn(row.confirmed)}, before ${claim.slotCreatedAfter}, where this change log created its slot`,
    );
  }
  if (checkpoint !== null && row.confirmed !== null && row.confirmed > checkpoint) {
    throw new FeatureflowError(
      'FF_PG_SLOT_AHEAD',
      `the change log is behind its replication slot ${slot} on ${where}: the slot has confirmed ${formatLsn(row.confirmed)}, ` +
        `the log's checkpoint is ${formatLsn(checkpoint)}, so the changes committed between them are gone from the slot ` +
        '(the log was restored from an older copy, or another change log used this slot). Take a new snapshot into this ' +
        'file (`featureflow teardown --yes`, then `featureflow ingest`), or set postgres({ slot }) to a name of its own for this file',
    );
  }
}

/** A publication as the catalog shows it. */
interface PublicationRow {
  readonly viaRoot: boolean;
  readonly tables: ReadonlySet<string>;
}

async function readPublication(client: pg.Client, publication: string): Promise<PublicationRow | null> {
  // pg_publication_rel lists the tables as they were added (a partitioned table, not its partitions,
  // whatever publish_via_partition_root says); a FOR ALL TABLES publication holds every table.
  const { rows } = await client.query(
    `SELECT p.pubviaroot, p.puballtables,
            ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_publication_rel r
                    JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE r.prpubid = p.oid) AS tables
       FROM pg_publication p WHERE p.pubname = $1`,
    [publication],
  );
  if (rows.length === 0) return null;
  return { viaRoot: rows[0].pubviaroot, tables: new Set(rows[0].puballtables ? ['(all tables)'] : rows[0].tables) };
}

/**
 * Makes sure the publication publishes the configured tables, without ever changing what it
 * publishes for someone else: a missing publication is created (and owned); tables added to the
 * configuration are added to an owned one; a publication holding tables this log does not capture
 * is refused, and so is one the log does not own that lacks a configured table. Returns whether the
 * log owns it now. Creating or altering it needs ownership of the tables (or superuser).
 */
export async function checkPublication(
  client: pg.Client,
  args: {
    readonly publication: string;
    readonly tables: readonly string[];
    readonly owned: boolean;
    readonly partitioned: readonly string[];
    readonly where: string;
  },
): Promise<boolean> {
  const { publication, tables, where } = args;
  const name = quoteIdent(publication);
  const list = tables.map(quoteTable).join(', ');
  try {
    const existing = await readPublication(client, publication);
    // Without publish_via_partition_root, changes of a partitioned table arrive under each partition's
    // name, which is not a configured table: they would be dropped.
    if (!existing) {
      await client.query(`CREATE PUBLICATION ${name} FOR TABLE ${list} WITH (publish_via_partition_root = true)`);
      return true;
    }
    const foreignTables = [...existing.tables].filter((t) => !tables.includes(t));
    if (foreignTables.length > 0) {
      throw new FeatureflowError(
        'FF_PG_PUBLICATION_FOREIGN',
        `publication ${publication} on ${where} publishes ${foreignTables.join(', ')}, which this change log does not capture ` +
          `(it captures ${tables.join(', ')}): another change log or tool uses it, and rewriting it would cut off that one's changes. ` +
          `Set postgres({ publication }) to a name of its own (by default it is the slot's name)`,
      );
    }
    const missing = tables.filter((t) => !existing.tables.has(t));
    const needsRoot = !existing.viaRoot && args.partitioned.length > 0;
    if (!args.owned && (missing.length > 0 || needsRoot)) {
      const fixes = [
        ...(missing.length > 0 ? [`ALTER PUBLICATION ${name} ADD TABLE ${missing.map(quoteTable).join(', ')}`] : []),
        ...(needsRoot ? [`ALTER PUBLICATION ${name} SET (publish_via_partition_root = true)`] : []),
      ];
      throw new FeatureflowError(
        'FF_PG_PUBLICATION_FOREIGN',
        `publication ${publication} on ${where} was not created by this change log and ` +
          `${missing.length > 0 ? `does not publish ${missing.join(', ')}` : 'does not publish partitioned tables under their own name'}; ` +
          `featureflow never alters a publication it did not create. Run ${fixes.join('; ')} as its owner, or set postgres({ publication }) to a new name`,
      );
    }
    if (!existing.viaRoot) await client.query(`ALTER PUBLICATION ${name} SET (publish_via_partition_root = true)`);
    if (missing.length > 0)
      await client.query(`ALTER PUBLICATION ${name} ADD TABLE ${missing.map(quoteTable).join(', ')}`);
    return args.owned;
  } catch (error) {
    if ((error as { code?: string }).code === '42501') {
      throw new FeatureflowError(
        'FF_PG_PRIVILEGE',
        `publication ${publication} cannot be created or extended on ${where}: the role must own the tables ${tables.join(', ')} ` +
          `(or be a superuser); create it once as the owner: CREATE PUBLICATION ${name} FOR TABLE ${list} WITH (publish_via_partition_root = true)`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Drops the slot if this log created it (waiting a moment for a walsender whose client just died); false when there was none. */
export async function dropOwnSlot(client: pg.Client, slot: string, where: string): Promise<boolean> {
  let row: SlotRow | null = null;
  for (let attempt = 0; attempt < 50; attempt++) {
    row = await readSlot(client, slot);
    if (!row?.active) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!row) return false;
  if (row.active) {
    throw new FeatureflowError(
      'FF_PG_REPLICATION',
      `replication slot ${slot} on ${where} is in use by another process (pid ${row.activePid}); stop the other ` +
        'featureflow ingest, or configure another postgres({ slot })',
    );
  }
  await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
  return true;
}
