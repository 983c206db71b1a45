import type { Pgoutput } from 'pg-logical-replication';
import type { Logger } from 'pino';
import { FeatureflowError } from '../../framework/errors.js';
import type { Change, Row, TableSchema, VersionedSchema } from '../../framework/types.js';
import type { Lsn } from './lsn.js';
import { decoderFor, type Decoder } from './pg-binary.js';
import type { PgTypeResolver } from './pg-types.js';
import { columnsFilledWithoutChanges, type CatalogQuery } from './pg-catalog.js';
import { decodeTupleData, type RowMessage } from './pgoutput-rows.js';

/** A captured relation as the stream knows it: its schema version and how to decode its tuples. */
export interface RelationState {
  schema: VersionedSchema;
  decoders: Decoder[];
  names: string[];
  /** Per column: flagged as key by the Relation message (what a 'K' tuple carries). */
  keyFlags: boolean[];
  /** The table's changes committed before this are in its own later snapshot (FollowOptions.tableStarts). */
  start: Lsn;
}

/** The transaction being read. */
export interface Txn {
  readonly commitLsn: Lsn;
  readonly commitTime: bigint;
  readonly xid: number;
  /** Its commit lies at or before the checkpoint: its changes are in the log already. */
  readonly skip: boolean;
}

/** What the relation table needs from the stream's owner. */
export interface RelationContext {
  readonly tables: ReadonlySet<string>;
  readonly resolver: PgTypeResolver;
  readonly catalog: CatalogQuery;
  readonly logger: Logger;
  /** Latest schema per table already stored, to number new versions after them. */
  readonly knownSchemas: ReadonlyMap<string, VersionedSchema>;
  /** Per table added to a running log (or read again), its snapshot's LSN: its changes committed before are skipped. */
  readonly tableStarts: ReadonlyMap<string, Lsn>;
}

function sameSchema(a: TableSchema, b: TableSchema): boolean {
  return (
    a.columns.length === b.columns.length &&
    // The type OID too: text → varchar decodes alike but is a different column type for readers.
    a.columns.every((c, i) => {
      const d = b.columns[i]!;
      return c.name === d.name && c.typeOid === d.typeOid && c.type === d.type && c.array === d.array;
    }) &&
    a.keyColumns.join('\0') === b.keyColumns.join('\0')
  );
}

/**
 * The captured relations of one replication session, from pgoutput's Relation messages: each
 * message's table gets a schema version (a new one when its shape changed), and its rows are decoded
 * into changes with it.
 */
export class RelationTable {
  private readonly relations = new Map<number, RelationState>();
  private readonly latest = new Map<string, VersionedSchema>();

  constructor(private readonly ctx: RelationContext) {
    for (const [table, schema] of ctx.knownSchemas) this.latest.set(table, schema);
  }

  /** The relation of a row message, if captured. */
  get(relationOid: number): RelationState | undefined {
    return this.relations.get(relationOid);
  }

  /**
   * Takes a Relation message: a new schema version when the shape changed. Returns the columns it
   * added that rows already in the table hold a value in without changes in the stream (a default),
   * if any: the table is then to be read again.
   */
  async onRelation(
    msg: Pgoutput.MessageRelation,
    schemas: VersionedSchema[],
    commitLsn: Lsn | undefined,
  ): Promise<{ table: string; columns: string[] } | undefined> {
    const table = `${msg.schema}.${msg.name}`;
    if (!this.ctx.tables.has(table)) return undefined;
    let filled: string[] = [];
    const previous = this.latest.get(table);
    const columns = [];
    for (const col of msg.columns) {
      let resolved: { type: string; array: boolean };
      try {
        resolved = await this.ctx.resolver.resolve(col.typeOid, this.ctx.catalog);
      } catch (error) {
        throw new FeatureflowError(
          'FF_PG_TYPE_UNSUPPORTED',
          `column ${table}.${col.name} now has a type (oid ${col.typeOid}) that featureflow cannot decode exactly; ` +
            'change the column type back, or drop the column',
          { cause: error },
        );
      }
      columns.push({
        name: col.name,
        ...resolved,
        typeOid: col.typeOid,
        key: false,
        ...(col.typeMod >= 0 ? { typeModifier: col.typeMod } : {}),
      });
    }
    const names = columns.map((c) => c.name);
    // pgoutput flags key columns in table order (under REPLICA IDENTITY FULL it flags every column),
    // while the catalog gives the primary key in index order: keep the known key while it still fits,
    // or a composite key's encoding (and so every row's identity in the log) would change.
    let keyColumns = msg.keyColumns;
    if (previous?.keyColumns.every((k) => names.includes(k))) {
      const sameSet =
        keyColumns.length === previous.keyColumns.length && previous.keyColumns.every((k) => keyColumns.includes(k));
      if (sameSet || msg.replicaIdentity === 'full') keyColumns = [...previous.keyColumns];
    }
    const candidate = { table, columns: columns.map((c) => ({ ...c, key: keyColumns.includes(c.name) })), keyColumns };
    let schema: VersionedSchema;
    const start = this.ctx.tableStarts.get(table) ?? 0n;
    if (previous && sameSchema(previous, candidate)) schema = previous;
    else if (commitLsn !== undefined && commitLsn < start) {
      // The transaction's changes of the table are in the table's own later snapshot (and skipped):
      // the shape it had then is no version of the log. A change after that snapshot comes with a
      // Relation message of its own whenever the shape differs from the snapshot's.
      schema = { ...candidate, version: previous?.version ?? 0 };
    } else {
      schema = { ...candidate, version: (previous?.version ?? 0) + 1 };
      this.latest.set(table, schema);
      schemas.push(schema);
      this.ctx.logger.info({ table, version: schema.version }, 'table schema changed in the stream');
      // PostgreSQL gives the rows that existed before the ALTER the default without writing a change:
      // the table is to be read again once this transaction is durable.
      const added = previous ? names.filter((n) => !previous.columns.some((c) => c.name === n)) : [];
      if (added.length > 0) filled = await columnsFilledWithoutChanges(this.ctx.catalog, table, added);
    }
    this.relations.set(msg.relationOid, {
      schema,
      decoders: schema.columns.map((c) => decoderFor(c.type, c.array)),
      names,
      keyFlags: msg.columns.map((c) => (c.flags & 1) === 1),
      start,
    });
    return filled.length > 0 ? { table, columns: filled } : undefined;
  }

  private keyOf(state: RelationState, row: Row): Row {
    const key: Row = {};
    for (const k of state.schema.keyColumns) key[k] = row[k] ?? null;
    return key;
  }

  decodeTruncate(msg: Pgoutput.MessageTruncate, lsn: Lsn, txn: Txn): Change[] {
    const out: Change[] = [];
    const common = { position: lsn, commitPosition: txn.commitLsn, commitTime: txn.commitTime, xid: txn.xid };
    for (const rel of msg.relations) {
      const state = this.relations.get(rel.relationOid);
      if (!state || txn.commitLsn < state.start) continue;
      out.push({
        ...common,
        table: state.schema.table,
        op: 't',
        key: null,
        before: null,
        after: null,
        schemaVersion: state.schema.version,
      });
    }
    return out;
  }

  /** The change of an insert, update or delete of a captured relation. */
  decodeRowChange(state: RelationState, msg: RowMessage, lsn: Lsn, txn: Txn): Change {
    const { buf, newAt, oldAt, oldIsKey } = msg;
    // Literal objects (one shape for every change), not spreads: this runs once per row.
    const { table, version: schemaVersion } = state.schema;
    const { commitLsn: commitPosition, commitTime, xid } = txn;
    const position = lsn;
    if (msg.tag === 'insert') {
      const after = decodeTupleData(state, buf, newAt, false);
      return {
        position,
        commitPosition,
        commitTime,
        xid,
        table,
        schemaVersion,
        op: 'c',
        key: this.keyOf(state, after),
        before: null,
        after,
      };
    } else if (msg.tag === 'update') {
      const unchanged: string[] = [];
      // pgoutput sends 'u' for an unchanged TOASTed value: the old row's value under REPLICA IDENTITY
      // FULL ('O'), a key column's from the old key ('K', sent when the key is TOASTed), else listed in
      // unchangedToast and filled later from the last known row.
      const after = decodeTupleData(
        state,
        buf,
        newAt,
        false,
        unchanged,
        oldAt >= 0 ? { buf, at: oldAt, keyOnly: oldIsKey } : undefined,
      );
      const before = oldAt >= 0 ? decodeTupleData(state, buf, oldAt, oldIsKey) : null;
      const unknownKey = unchanged.find((c) => state.schema.keyColumns.includes(c));
      if (unknownKey !== undefined) {
        throw new FeatureflowError(
          'FF_TOAST_UNFILLED',
          `an update of ${table} left its TOASTed key column ${unknownKey} unchanged and PostgreSQL sent no old key to tell ` +
            'the row by; set REPLICA IDENTITY FULL on the table, then take a new snapshot: `featureflow teardown --yes`, then `featureflow ingest`',
        );
      }
      const change: Change = {
        position,
        commitPosition,
        commitTime,
        xid,
        table,
        schemaVersion,
        op: 'u',
        key: this.keyOf(state, after),
        before,
        after,
      };
      if (unchanged.length > 0) change.unchangedToast = unchanged;
      return change;
    } else {
      const before = decodeTupleData(state, buf, oldAt, oldIsKey);
      return {
        position,
        commitPosition,
        commitTime,
        xid,
        table,
        schemaVersion,
        op: 'd',
        key: this.keyOf(state, before),
        before,
        after: null,
      };
    }
  }
}
