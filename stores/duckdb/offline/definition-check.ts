import { randomBytes } from 'node:crypto';
import { BOOLEAN, UBIGINT, type DuckDBConnection } from '@duckdb/node-api';
import type { FeatureView } from '../../../framework/features/feature-view.js';
import { FeatureRegistry } from '../../../framework/features/feature-registry.js';
import { Materializer } from '../../../framework/features/materialize.js';
import { FeatureflowError } from '../../../framework/errors.js';
import {
  formatPosition,
  type Change,
  type ColumnSchema,
  type Value,
  type VersionedSchema,
} from '../../../framework/types.js';
import { makeChunk } from '../chunk-columns.js';
import { quoteIdent } from '../duckdb-database.js';
import { loggedChanges } from '../change-log/logged-changes.js';
import { featureCodec, HISTORY_COLUMNS, keyCodec, type ColumnCodec } from './feature-columns.js';
import { rowsTableOf } from './feature-layout.js';

/** Random logged changes recomputed per view version at open, besides the newest. */
export const SAMPLED_CHANGES = 32;

const FLAG = { sql: 'BOOLEAN', duck: BOOLEAN, column: HISTORY_COLUMNS[3]!.column };
const VALID_FROM = HISTORY_COLUMNS[0]!;
const LSN = HISTORY_COLUMNS[1]!;

/**
 * Recomputes a sample of a view version's stored rows with the definition configured now and
 * refuses the version (FF_FEATURE_VERSION) when one differs: the fingerprint covers the transform's
 * own source text only, and a helper it calls (`scale(row.pixels)`) can change without a word.
 *
 * The sample is the newest logged insert, update or read of the view's source plus
 * {@link SAMPLED_CHANGES} random ones; each is materialized (the framework's materializer, over the
 * source's `schemas`) and compared with the history row stored at the same (entity key, position):
 * values bit for bit (a transform is pure: the same input gives the same bits), and whether the row
 * is a deletion (a filter). A sampled change with no stored row (superseded within its instant,
 * rejected then) proves nothing and is skipped, as is one the transform rejects now (read back from
 * the log, a change can lack a value the ingest filled in). Snapshot reads of a view whose entity does not cover the table's key share
 * one position per entity, so only streamed changes are sampled then.
 */
export async function checkStoredRows(
  c: DuckDBConnection,
  view: FeatureView,
  schemas: readonly VersionedSchema[],
  nextVersion: number,
): Promise<void> {
  // A materializer of its own: the sample's rows are not the ingest's (its timings, see status).
  const materializer = new Materializer(new FeatureRegistry({ views: [view] }));
  try {
    materializer.addSchemas(schemas.filter((s) => s.table === view.source));
  } catch (error) {
    // A definition that no longer fits its source's newest schema is ingest's to refuse, with its own error.
    if (error instanceof FeatureflowError && error.code === 'FF_FEATURE_DEFINITION') return;
    throw error;
  }
  const schema = materializer.latestSchema(view.source);
  if (!schema) return;
  const columns = new Map(schema.columns.map((col) => [col.name, col]));
  const keys = view.entity.keys.map((k) => columns.get(k)).filter((col): col is ColumnSchema => col !== undefined);
  if (keys.length !== view.entity.keys.length) return;
  const uniqueReads = schema.keyColumns.length > 0 && schema.keyColumns.every((k) => view.entity.keys.includes(k));
  const seqs = await sample(c, view.source, uniqueReads ? ['r', 'c', 'u'] : ['c', 'u']);
  if (seqs.length === 0) return;

  const changes: Change[] = [];
  const columnsOf = (table: string, version: number) => materializer.schemaOf(table, version)?.columns ?? [];
  for await (const page of loggedChanges(c, { tables: [view.source], columnsOf, seqs })) changes.push(...page);
  const made = materializer.materializeChanges(changes, [view]);
  const rows: { key: readonly Value[]; values: readonly unknown[] | null; position: bigint; commitTime: bigint }[] = [];
  for (const batch of made.batches) for (const row of batch.rows) if (row.op !== 't') rows.push(row);
  if (rows.length === 0) return;

  const keyCodecs = keys.map((k) => keyCodec(k));
  const featureNames = Object.keys(view.features);
  const featureCodecs = Object.values(view.features).map(featureCodec);
  const codecs: (ColumnCodec & { name: string })[] = [
    ...view.entity.keys.map((name, i) => ({ ...keyCodecs[i]!, name })),
    ...featureNames.map((name, i) => ({ ...featureCodecs[i]!, name })),
    { ...LSN, sql: 'UBIGINT', duck: UBIGINT, name: 'lsn' },
    { ...VALID_FROM, sql: 'TIMESTAMPTZ', name: 'valid_from' },
    { ...FLAG, name: 'deleted' },
  ];
  const name = `_ff_recomputed_${randomBytes(6).toString('hex')}`;
  const temp = `temp.main.${quoteIdent(name)}`;
  await c.run(
    `CREATE TEMP TABLE ${quoteIdent(name)} (${codecs.map((k) => `${quoteIdent(k.name)} ${k.sql}`).join(', ')})`,
  );
  try {
    const appender = await c.createAppender(name, 'main', 'temp');
    const data: unknown[][] = [
      ...view.entity.keys.map((_, k) => rows.map((r) => r.key[k])),
      ...featureNames.map((_, f) => rows.map((r) => (r.values === null ? null : r.values[f]))),
      rows.map((r) => r.position),
      rows.map((r) => r.commitTime),
      rows.map((r) => r.values === null),
    ];
    appender.appendDataChunk(
      makeChunk(
        codecs.map((k) => k.duck),
        rows.length,
        codecs.map((k, i) => k.column(data[i]!, 0, rows.length)),
      ),
    );
    appender.closeSync();

    const k = view.entity.keys.map(quoteIdent);
    const same = featureNames.map((f) => `n.${quoteIdent(f)} IS NOT DISTINCT FROM r.${quoteIdent(f)}`);
    const found = (
      await c.runAndReadAll(
        `SELECT ${k.map((q) => `n.${q}`).join(', ')}, n.lsn, n.deleted = r.deleted${same.map((s) => `, ${s}`).join('')}
           FROM ${temp} n JOIN ${quoteIdent(rowsTableOf(view.table))} r ON ${k.map((q) => `r.${q} = n.${q}`).join(' AND ')} AND r.lsn = n.lsn
            -- A change whose record starts at the snapshot's very position shares it with the snapshot's
            -- read of its row: the commit time tells them apart.
            AND r.valid_from = n.valid_from
            -- A truncate's deletion rows share the position of a table read again after it (the reads supersede them).
            AND r.op <> 't'
          WHERE n.deleted <> r.deleted OR NOT (${same.length === 0 ? 'true' : same.join(' AND ')})
          ORDER BY n.lsn DESC LIMIT 1`,
      )
    ).getRows()[0];
    if (!found) return;
    const keyText = view.entity.keys.map((key, i) => `${key}=${String(found[i])}`).join(', ');
    const position = formatPosition(BigInt(found[k.length] as bigint));
    const [sameDeleted, ...sameFeatures] = found.slice(k.length + 1) as boolean[];
    const what = !sameDeleted
      ? 'the filter now decides differently whether the row is kept'
      : `feature ${featureNames[sameFeatures.indexOf(false)]} now has a different value`;
    throw new FeatureflowError(
      'FF_FEATURE_VERSION',
      `feature view ${view.name} v${view.version} computes differently from the rows stored in ${view.table}, though its definition's source text is unchanged: ` +
        `recomputing the stored row of ${keyText} (change at ${position}) with the current definition, ${what}. ` +
        `Something the transform or filter calls or reads changed (a helper function, a constant). ` +
        `Bump its version to ${nextVersion} (the new version's table is built from the change log; v${view.version} stays readable), or restore what changed`,
    );
  } finally {
    // After a failure the transaction is aborted and takes the table with it: the failure is what to report.
    await c.run(`DROP TABLE IF EXISTS ${temp}`).catch(() => undefined);
  }
}

/** `seq` of the newest and of up to {@link SAMPLED_CHANGES} random logged changes of `table` with one of `ops`. */
async function sample(c: DuckDBConnection, table: string, ops: readonly string[]): Promise<bigint[]> {
  const of = `SELECT seq FROM change_log WHERE table_name = $1 AND op IN (${ops.map((o) => `'${o}'`).join(', ')})`;
  const rows = (
    await c.runAndReadAll(
      `SELECT max(seq) FROM (${of}) UNION SELECT seq FROM (${of}) USING SAMPLE reservoir(${SAMPLED_CHANGES} ROWS)`,
      [table],
    )
  ).getRows() as [bigint | null][];
  return rows.map(([s]) => s).filter((s): s is bigint => s !== null);
}

/** The same check for a reader of a store file (no change log open): the source schemas come from the file. */
export async function checkStoredRowsOf(c: DuckDBConnection, view: FeatureView, nextVersion: number): Promise<void> {
  const rows = (
    await c.runAndReadAll('SELECT table_name, version, columns, key_columns FROM _schemas WHERE table_name = $1', [
      view.source,
    ])
  ).getRows() as [string, number, string, string][];
  const schemas = rows.map(([table, version, columns, keyColumns]) => ({
    table,
    version,
    columns: JSON.parse(columns) as ColumnSchema[],
    keyColumns: JSON.parse(keyColumns) as string[],
  }));
  await checkStoredRows(c, view, schemas, nextVersion);
}
