import { randomBytes } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import type * as arrow from 'apache-arrow';
import { FeatureflowError } from '../../../framework/errors.js';
import { FeatureRegistry, type FeatureDefinitions } from '../../../framework/features/feature-registry.js';
import type { FeatureService } from '../../../framework/features/feature-service.js';
import type {
  ExportOptions,
  ExportRequest,
  ExportResult,
  FeatureRowScan,
  FeatureViewStatus,
  OfflineStore,
  ScanOptions,
  TrainingSetOptions,
  ViewRef,
} from '../../../framework/interfaces/offline-store.js';
import { duckdbTypeName, parseTypeName } from '../../../framework/features/feature-types.js';
import type { FeatureSelection } from '../../../framework/features/feature-view.js';
import {
  describeChanges,
  describeView,
  fingerprint,
  type ViewDescriptor,
} from '../../../framework/features/fingerprint.js';
import { durationMicros, toMicros } from '../../../framework/features/instant.js';
import { openDuckDB, quoteIdent, quoteLiteral, READER_MEMORY_LIMIT } from '../duckdb-database.js';
import { queryArrow, streamArrow, type ArrowStream } from './duckdb-arrow.js';
import { checkStoredRowsOf } from './definition-check.js';
import { featureStatus, readViewRecords, type ViewRecord } from './feature-catalog.js';
import { expectedRows, writeExport } from './feature-export.js';
import { checkLayout, rowsTableOf } from './feature-layout.js';
import {
  AS_OF_RULE,
  LATEST_RULE,
  POINT_IN_TIME_RULE,
  pickedInKeyOrderSql,
  pickedRangesSql,
  valuesAtSql,
  valuesInRangesSql,
  tensorMetadata,
  type FeatureQuery,
  type ViewSelection,
} from './feature-query.js';
import { scanLatest, type ScanConnection } from './history-scan.js';
import { RemoteOfflineStore } from './remote-offline-store.js';
import { loadSpine, spineTimeExpression } from './spine-loader.js';

/**
 * Reads feature history tables: the latest values, values as of a time (time travel), and
 * point-in-time-correct training sets, as Apache Arrow tables or Parquet / Arrow IPC files with a
 * manifest. Works on a connection of the change log's DuckDB (in the ingesting process one per read, see IngestingOfflineStore)
 * or on a file opened read-only ({@link openOfflineStore}).
 *
 * @example
 * const store = await openOfflineStore('.featureflow/featureflow.duckdb', { definitions: config.features });
 * const train = await store.trainingSet({ spine: 'spine.parquet', features: [digits] });
 */
export class DuckDBOfflineStore implements OfflineStore {
  /** Set by {@link openOfflineStore}; a store on a shared connection has nothing to close. */
  close(): void {}

  private readonly registry: FeatureRegistry;
  private readonly connect: () => DuckDBConnection;
  private readonly openConnection: (() => Promise<DuckDBConnection>) | undefined;
  private readonly queryMemory: boolean;
  private readonly beginRead: (() => Promise<void>) | undefined;
  private readonly checkRows: boolean;
  /** View versions whose stored rows were recomputed and found equal (`name@version`). */
  private readonly checked = new Set<string>();

  /**
   * `connection`: a connection, or (for the ingesting process's store) how to get the change log's once
   * it is open. `openConnection` opens another connection to the same database, for the streamed
   * scans ({@link latestRows}): each reads in a transaction of its own, consistent
   * while the change log commits on its connection. Without it they read on `connection`, which
   * nothing may write to meanwhile. `queryMemory` (default true): each feature query gets at least
   * {@link QUERY_MEMORY_LIMIT} of DuckDB memory, for the ingesting process's store; a reader honours
   * its own limit (false). `beginRead`: called by each read (latest, as of, training set, export)
   * before it reads stored data, once a training set's spine is in its temp tables: a caller reading in
   * a transaction of its own begins it there, because DuckDB 1.5 scans a temp table written in the same
   * transaction about 4× slower (transaction-local storage: a 1.5M-row training set took 17 s instead of 4 s).
   */
  constructor(
    connection: DuckDBConnection | (() => DuckDBConnection),
    options: {
      readonly definitions?: FeatureDefinitions | FeatureRegistry;
      readonly openConnection?: () => Promise<DuckDBConnection>;
      readonly queryMemory?: boolean;
      readonly beginRead?: () => Promise<void>;
      /**
       * Recompute a sample of a configured view's stored rows the first time it is read (see
       * checkStoredRows); default false: the ingesting process checked them when it opened the history.
       */
      readonly checkStoredRows?: boolean;
    } = {},
  ) {
    this.connect = typeof connection === 'function' ? connection : () => connection;
    this.openConnection = options.openConnection;
    this.queryMemory = options.queryMemory ?? true;
    this.beginRead = options.beginRead;
    this.checkRows = options.checkStoredRows ?? false;
    const defs = options.definitions;
    this.registry = defs instanceof FeatureRegistry ? defs : new FeatureRegistry(defs ?? {});
  }

  get connection(): DuckDBConnection {
    return this.connect();
  }

  /** Every view version with a table (from `_feature_views`). */
  async views(): Promise<ViewRecord[]> {
    return readViewRecords(this.connection);
  }

  /** Per view version: history rows, current entities, dead letters, watermark. */
  async status(): Promise<FeatureViewStatus[]> {
    return featureStatus(this.connection);
  }

  /** Each entity's current feature values (keys, features, valid_from), ordered by key. */
  async latest(view: ViewRef): Promise<arrow.Table> {
    return this.read(await this.valuesAtQuery(view, null));
  }

  /** The feature values valid at `at` (time travel): keys, features, valid_from, ordered by key. */
  async asOf(view: ViewRef, at: Date | string | bigint): Promise<arrow.Table> {
    return this.read(await this.valuesAtQuery(view, instant(at)));
  }

  /** The spine with point-in-time-correct features joined (see {@link POINT_IN_TIME_RULE}), in spine order. */
  async trainingSet(options: TrainingSetOptions): Promise<arrow.Table> {
    return this.read(await this.trainingSetQuery(options));
  }

  /**
   * Each entity's current feature values as feature rows (keys in the entity's key order, features
   * in the view's order and stored form, position and commit time of the change that made them),
   * with the watermark they reflect; streamed from DuckDB in batches of `batchSize` (10 000), in no
   * set order. Key columns stored as text (any key type but integers, floats and booleans) come back
   * as their text.
   *
   * @example
   * const scan = await store.latestRows('digits');
   * for await (const rows of scan.rows) await online.write([{ view, rows }]);
   * if (scan.watermark !== null) await online.setWatermark(view, scan.watermark);
   */
  async latestRows(view: ViewRef, options: ScanOptions = {}): Promise<FeatureRowScan> {
    return scanLatest(() => this.scanConnection(), await this.resolve(view), options.batchSize);
  }

  /**
   * Every history row of the view with a position above `after`, in position order, as feature rows:
   * deletions with null values, a truncate as one row (op `t`, no key), as the live path hands them
   * out; streamed like {@link latestRows}.
   */

  private async scanConnection(): Promise<ScanConnection> {
    return this.openConnection
      ? { connection: await this.openConnection(), own: true }
      : { connection: this.connection, own: false };
  }

  /** The rows views rejected, with the error (for one view, or all). */
  async deadLetters(view?: string): Promise<arrow.Table> {
    const where = view === undefined ? '' : `WHERE view = '${view.replaceAll("'", "''")}'`;
    return queryArrow(this.connection, `SELECT * FROM _feature_dead_letters ${where} ORDER BY lsn`);
  }

  /**
   * Writes a view (latest, or as of a time) or a training set to `out`: `.parquet` (DuckDB's COPY) or
   * `.arrow` (Arrow IPC file format), plus `<out>.manifest.json` (view versions, fingerprints, LSN
   * watermark, row count, the rule used).
   */
  async export(request: ExportRequest, out: string, options: ExportOptions = {}): Promise<ExportResult> {
    const query = await this.query(request);
    try {
      if (query.streams && !this.queryMemory)
        return await this.withStreamMemory(() => writeExport(this.connection, query, out, options));
      return await this.withQueryMemory(() => writeExport(this.connection, query, out, options));
    } catch (error) {
      throw readError(error);
    } finally {
      await query.cleanup();
    }
  }

  /**
   * The rows of a view (latest, or as of a time) or of a training set, as Arrow record batches streamed
   * from DuckDB and checked complete: for a caller that passes them on without holding the whole
   * result (the read service of an ingesting process). Iterate the batches once, to the end or
   * breaking off (either releases the query).
   */
  async batches(request: ExportRequest): Promise<ArrowStream> {
    const query = await this.query(request);
    let restore: () => Promise<void> = async () => undefined;
    try {
      restore = await this.raiseQueryMemory();
      const stream = await streamArrow(this.connection, query.sql, [], {
        fieldMetadata: query.fieldMetadata,
        expectedRows: await expectedRows(this.connection, query),
      });
      async function* batches(): AsyncGenerator<arrow.RecordBatch> {
        try {
          yield* stream.batches;
        } catch (error) {
          throw readError(error);
        } finally {
          await restore();
          await query.cleanup();
        }
      }
      return { schema: stream.schema, batches: batches() };
    } catch (error) {
      await restore();
      await query.cleanup();
      throw readError(error);
    }
  }

  /** The query of a read or an export. */
  private async query(request: ExportRequest): Promise<FeatureQuery> {
    return 'trainingSet' in request
      ? await this.trainingSetQuery(request.trainingSet)
      : await this.valuesAtQuery(request.view, request.asOf === undefined ? null : instant(request.asOf));
  }

  private async read(query: FeatureQuery): Promise<arrow.Table> {
    try {
      return await this.withQueryMemory(async () =>
        queryArrow(this.connection, query.sql, [], {
          fieldMetadata: query.fieldMetadata,
          expectedRows: await expectedRows(this.connection, query),
        }),
      );
    } catch (error) {
      throw readError(error);
    } finally {
      await query.cleanup();
    }
  }

  /**
   * Runs a feature query with at least {@link QUERY_MEMORY_LIMIT} of DuckDB memory (unless the store
   * honours its own limit). An ingesting process caps its DuckDB at `duckdb({ memoryLimit })` (64 MB by
   * default) to bound its RSS; a training set's parallel joins on that instance ran out of it now and then.
   */
  private async withQueryMemory<T>(run: () => Promise<T>): Promise<T> {
    const restore = await this.raiseQueryMemory();
    try {
      return await run();
    } finally {
      await restore();
    }
  }

  /**
   * Runs a streamed export of a process that only reads with DuckDB's memory limit at most
   * {@link STREAM_MEMORY_LIMIT}: the file is written chunk by chunk, and a higher limit only let
   * DuckDB cache more of the table's blocks (an export of 300k digit images peaked at 970 MB of RSS
   * with a 512 MB limit, 470 MB with 128 MB, at the same speed).
   */
  private async withStreamMemory<T>(run: () => Promise<T>): Promise<T> {
    const limit = (
      await this.connection.runAndReadAll(`SELECT current_setting('memory_limit')`)
    ).getRows()[0]![0] as string;
    const bytes = parseMemory(limit);
    if (bytes === undefined || bytes <= STREAM_MEMORY_BYTES) return run();
    await this.connection.run(`SET memory_limit = '${STREAM_MEMORY_LIMIT}'`);
    try {
      return await run();
    } finally {
      await this.connection.run(`SET memory_limit = ${quoteLiteral(limit)}`);
    }
  }

  /** Raises DuckDB's memory limit to {@link QUERY_MEMORY_LIMIT} where it is lower; returns how to put it back. */
  private async raiseQueryMemory(): Promise<() => Promise<void>> {
    if (!this.queryMemory) return async () => undefined;
    const limit = (
      await this.connection.runAndReadAll(`SELECT current_setting('memory_limit')`)
    ).getRows()[0]![0] as string;
    const bytes = parseMemory(limit);
    if (bytes === undefined || bytes >= QUERY_MEMORY_BYTES) return async () => undefined;
    await this.connection.run(`SET memory_limit = '${QUERY_MEMORY_LIMIT}'`);
    return async () => {
      await this.connection.run(`SET memory_limit = ${quoteLiteral(limit)}`);
    };
  }

  /** The stored record of a view version, and the selection of all or some of its features. */
  private async resolve(ref: ViewRef, features?: readonly string[]): Promise<ViewSelection> {
    const name = typeof ref === 'string' ? ref : ref.name;
    let version = typeof ref === 'string' ? undefined : ref.version;
    const records = (await readViewRecords(this.connection)).filter((r) => r.name === name);
    version ??= this.registry.view(name)?.version ?? records.map((r) => r.version).sort((a, b) => b - a)[0];
    const record = records.find((r) => r.version === version);
    const defined =
      typeof ref === 'object' && 'kind' in ref ? ref : record ? this.registry.view(name, record.version) : undefined;
    if (record && defined) {
      checkDefinition(record, describeView(defined));
      const id = `${name}@${record.version}`;
      if (this.checkRows && record.keyColumns !== null && !this.checked.has(id)) {
        await checkLayout(this.connection, record.name, record.version, record.table);
        const next = Math.max(...records.map((r) => r.version)) + 1;
        // One pass of the table joined to a sample of rows: it streams, and more memory only
        // cached the table's blocks (443 MB of a 300k-image view's at a 512 MB limit).
        const check = () => checkStoredRowsOf(this.connection, defined, next);
        await (this.queryMemory ? check() : this.withStreamMemory(check));
        this.checked.add(id);
      }
    }
    if (!record) {
      const known = records.map((r) => `v${r.version}`).join(', ');
      throw new FeatureflowError(
        'FF_EXPORT',
        records.length === 0
          ? `feature view ${name} has no table in this store; add it to config.features and run \`featureflow ingest\`` +
              (this.registry.services.length === 0
                ? ' (a feature service is known by name only to a store opened with its config)'
                : '')
          : `feature view ${name} has no version ${version} in this store (it has ${known}); pick one of those, or run \`featureflow ingest\` with v${version} in config.features`,
      );
    }
    if (record.keyColumns === null) {
      throw new FeatureflowError(
        'FF_EXPORT',
        `feature view ${name} v${record.version} has no rows yet (${record.source} was never ingested); run \`featureflow ingest\``,
      );
    }
    await checkLayout(this.connection, record.name, record.version, record.table);
    const types = new Map(Object.entries(record.definition.features).map(([f, t]) => [f, parseTypeName(t)]));
    const selected = features ?? [...types.keys()];
    for (const f of selected) {
      if (!types.has(f)) {
        throw new FeatureflowError(
          'FF_EXPORT',
          `feature view ${name} v${record.version} has no feature ${f}; it has ${[...types.keys()].join(', ')}`,
        );
      }
    }
    return { record, features: selected, types };
  }

  private async valuesAtQuery(ref: ViewRef, at: bigint | null): Promise<FeatureQuery> {
    await this.beginRead?.();
    const selection = await this.resolve(ref);
    const ranges = await this.rangesInKeyOrder(selection, at);
    return {
      kind: at === null ? 'latest' : 'asOf',
      sql: ranges ? valuesInRangesSql(selection, ranges) : valuesAtSql(selection, at),
      streams: ranges !== undefined,
      views: [selection],
      fieldMetadata: new Map(tensorMetadata(selection, (f) => f)),
      ...(at === null ? {} : { asOf: at }),
      rule: at === null ? LATEST_RULE : AS_OF_RULE,
      cleanup: async () => undefined,
    };
  }

  /**
   * The rowid ranges that hold exactly the rows of the view's values at `at`, when those lie in the
   * base table in key order (a snapshot's rows do, and rows appended in key order) in at most
   * {@link MAX_STREAMED_RANGES} ranges: a filter on them reads the rows in order without sorting them.
   */
  private async rangesInKeyOrder(
    selection: ViewSelection,
    at: bigint | null,
  ): Promise<(readonly [bigint, bigint])[] | undefined> {
    const c = this.connection;
    let rows: unknown[][];
    try {
      if ((await c.runAndReadAll(pickedInKeyOrderSql(selection, at))).getRows()[0]![0] !== true) return undefined;
      rows = (await c.runAndReadAll(pickedRangesSql(selection, at, MAX_STREAMED_RANGES))).getRows();
    } catch (error) {
      throw readError(error);
    }
    if (rows.length === 0 || rows.length > MAX_STREAMED_RANGES) return undefined;
    return rows.map(([lo, hi]) => [BigInt(lo as bigint), BigInt(hi as bigint)] as const);
  }

  /** The selections with their records as the connection sees them now (the watermark moves with each batch). */
  private async current(views: readonly ViewSelection[]): Promise<ViewSelection[]> {
    const records = await readViewRecords(this.connection);
    return views.map((v) => {
      const record = records.find((r) => r.name === v.record.name && r.version === v.record.version);
      if (!record)
        throw new FeatureflowError(
          'FF_EXPORT',
          `feature view ${v.record.name} v${v.record.version} left the store while it was read; read again`,
        );
      return { ...v, record };
    });
  }

  /** Parses the `features` of a training set into view selections (merged per view version). */
  private async selections(features: TrainingSetOptions['features']): Promise<ViewSelection[]> {
    const wanted = new Map<string, { ref: ViewRef; features: Set<string> | null }>();
    const want = (ref: ViewRef, names: readonly string[] | null) => {
      const name = typeof ref === 'string' ? ref : ref.name;
      const version = typeof ref === 'string' ? undefined : ref.version;
      const id = `${name}@${version ?? ''}`;
      const entry = wanted.get(id) ?? { ref, features: new Set<string>() };
      if (names === null || entry.features === null) entry.features = null;
      else for (const n of names) entry.features.add(n);
      wanted.set(id, entry);
    };
    const items = isService(features) ? features.selections : this.namedItems(features);
    for (const item of items) {
      if (typeof item === 'string') {
        const m = /^([a-z][a-z0-9_]*)(?:@(\d+))?(?::([A-Za-z_][A-Za-z0-9_]*))?$/.exec(item);
        if (!m)
          throw new FeatureflowError(
            'FF_EXPORT',
            `cannot read feature reference ${JSON.stringify(item)}; write "view", "view:feature" or "view@2:feature"`,
          );
        want({ name: m[1]!, ...(m[2] ? { version: Number(m[2]) } : {}) }, m[3] ? [m[3]] : null);
      } else if ('kind' in item && item.kind === 'featureView') {
        want({ name: item.name, version: item.version }, null);
      } else {
        const s = item as FeatureSelection;
        want({ name: s.view.name, version: s.view.version }, s.features);
      }
    }
    const out: ViewSelection[] = [];
    for (const { ref, features: names } of wanted.values())
      out.push(await this.resolve(ref, names === null ? undefined : [...names]));
    return out;
  }

  /** A lone name is a feature service of the config, else one view reference; a list is taken as it is. */
  private namedItems(features: Exclude<TrainingSetOptions['features'], FeatureService>) {
    if (typeof features !== 'string') return features;
    return this.registry.service(features)?.selections ?? [features];
  }

  private async trainingSetQuery(options: TrainingSetOptions): Promise<FeatureQuery> {
    const c = this.connection;
    const timestampColumn = options.timestampColumn ?? 'event_timestamp';
    let views = await this.selections(options.features);
    if (views.length === 0)
      throw new FeatureflowError('FF_EXPORT', 'a training set needs at least one feature; list views or features');
    const ttlOverride = options.ttl === undefined ? undefined : durationMicros(options.ttl);
    const keyTypes = new Map<string, string>();
    for (const v of views)
      for (const k of v.record.keyColumns ?? []) if (!keyTypes.has(k.name)) keyTypes.set(k.name, k.sql);
    const raw = await loadSpine(c, options.spine, timestampColumn, keyTypes);
    const spine = `_ff_spine_${randomBytes(4).toString('hex')}`;
    const cleanup = async () => {
      await c.run(
        `DROP TABLE IF EXISTS temp.${quoteIdent(raw.table)}; DROP TABLE IF EXISTS temp.${quoteIdent(spine)};`,
      );
    };
    try {
      const timeType = raw.columns.get(timestampColumn);
      if (timeType === undefined) {
        throw new FeatureflowError(
          'FF_EXPORT',
          `the spine (${raw.source}) has no column ${timestampColumn} (it has ${[...raw.columns.keys()].join(', ')}); add the event times, or pass timestampColumn`,
        );
      }
      const extra: string[] = [`${spineTimeExpression(timestampColumn, timeType)} AS _ff_ts`];
      const hidden = ['_ff_row', '_ff_ts'];
      views.forEach((v, i) => {
        v.record.keyColumns!.forEach((k, j) => {
          if (!raw.columns.has(k.name)) {
            throw new FeatureflowError(
              'FF_EXPORT',
              `the spine (${raw.source}) has no column ${k.name}, the key of entity ${v.record.definition.entity.name} (view ${v.record.name}); add it to the spine`,
            );
          }
          extra.push(`TRY_CAST(${quoteIdent(k.name)} AS ${k.sql}) AS _ff_k${i}_${j}`);
          hidden.push(`_ff_k${i}_${j}`);
        });
      });
      await c.run(
        `CREATE TEMP TABLE ${quoteIdent(spine)} AS SELECT rowid AS _ff_row, *, ${extra.join(', ')} FROM ${quoteIdent(raw.table)}`,
      );
      if (this.beginRead) {
        // The spine is in committed temp tables: the caller's transaction begins now, and the views'
        // watermarks are read again in it (their keys and features do not change within a version).
        await this.beginRead();
        views = await this.current(views);
      }

      const outputNames = new Map<string, string>();
      for (const name of raw.columns.keys()) outputNames.set(name, `spine column ${name}`);
      const select: string[] = [];
      const joins: string[] = [];
      const metadata = new Map<string, Map<string, string>>();
      const ttl: Record<string, string | null> = {};
      views.forEach((v, i) => {
        const alias = `f${i}`;
        const out = (f: string) => (options.fullFeatureNames ? `${v.record.name}__${f}` : f);
        const viewTtl = ttlOverride ?? (v.record.definition.ttl === null ? null : BigInt(v.record.definition.ttl));
        ttl[`${v.record.name}@${v.record.version}`] = viewTtl === null ? null : viewTtl.toString();
        const stale = `${alias}.deleted${viewTtl === null ? '' : ` OR ${alias}.valid_from < s._ff_ts - to_microseconds(${viewTtl}::BIGINT)`}`;
        for (const f of v.features) {
          const name = out(f);
          const clash = outputNames.get(name);
          if (clash) {
            throw new FeatureflowError(
              'FF_EXPORT',
              `feature ${f} of view ${v.record.name} has the name of ${clash}; pass fullFeatureNames: true (names become <view>__<feature>) or rename the spine column`,
            );
          }
          outputNames.set(name, `feature ${f} of view ${v.record.name}`);
          const type = v.types.get(f)!;
          const column = `${alias}.${quoteIdent(f)}`;
          // DuckDB's CASE does not take fixed-size ARRAY values: go through a LIST and back.
          const value =
            type.kind === 'tensor'
              ? `(CASE WHEN ${stale} THEN NULL ELSE ${column}::${duckdbTypeName(type).replace(/\[\d+\]$/, '[]')} END)::${duckdbTypeName(type)}`
              : `CASE WHEN ${stale} THEN NULL ELSE ${column} END`;
          select.push(`${value} AS ${quoteIdent(name)}`);
        }
        for (const [k, m] of tensorMetadata(v, out)) metadata.set(k, m);
        const keys = v.record.keyColumns!;
        const columns = [
          ...keys.map((k) => quoteIdent(k.name)),
          'valid_from',
          'deleted',
          ...v.features.map(quoteIdent),
        ];
        const on = keys.map((k, j) => `s._ff_k${i}_${j} = ${alias}.${quoteIdent(k.name)}`).join(' AND ');
        joins.push(
          `ASOF LEFT JOIN (SELECT ${columns.join(', ')} FROM ${quoteIdent(rowsTableOf(v.record.table))}) ${alias} ON ${on} AND s._ff_ts >= ${alias}.valid_from`,
        );
      });
      const star = `s.* EXCLUDE (${hidden.join(', ')}) REPLACE (s._ff_ts AS ${quoteIdent(timestampColumn)})`;
      const sql = `SELECT ${[star, ...select].join(', ')} FROM ${quoteIdent(spine)} s ${joins.join(' ')} ORDER BY s._ff_row`;
      return {
        kind: 'trainingSet',
        sql,
        views,
        fieldMetadata: metadata,
        spine: { source: raw.source, rows: raw.rows, timestampColumn },
        ttl,
        rule: POINT_IN_TIME_RULE,
        cleanup,
      };
    } catch (error) {
      await cleanup();
      throw error;
    }
  }
}

/** Refuses a definition of a view version other than the one its stored table was built with (FF_FEATURE_VERSION). */
export function checkDefinition(record: ViewRecord, descriptor: ViewDescriptor): void {
  if (fingerprint(descriptor) === record.fingerprint) return;
  throw new FeatureflowError(
    'FF_FEATURE_VERSION',
    `feature view ${record.name} v${record.version} is defined differently from the one its table ${record.table} was built with: ` +
      `${describeChanges(record.definition, descriptor).join('; ')}; bump its version and run \`featureflow ingest\` to build the new table, or restore the definition`,
  );
}

/**
 * A failed read as a coded error: DuckDB running out of memory (its errors carry no code, only their
 * text) names the limit to raise.
 */
export function readError(error: unknown): unknown {
  if (error instanceof FeatureflowError) return error;
  const message = String((error as Error)?.message ?? error);
  if (/^Out of Memory Error/i.test(message)) {
    return new FeatureflowError(
      'FF_EXPORT',
      `a read of the feature store ran out of DuckDB memory (${message.split('\n')[0]}); raise the memory limit of the ` +
        'process reading: openOfflineStore(path, { memoryLimit }), or duckdb({ memoryLimit }) in the config',
      { cause: error },
    );
  }
  return error;
}

function isService(features: TrainingSetOptions['features']): features is FeatureService {
  return !Array.isArray(features) && (features as FeatureService).kind === 'featureService';
}

function instant(at: Date | string | bigint): bigint {
  try {
    return toMicros(at);
  } catch (error) {
    throw new FeatureflowError(
      'FF_EXPORT',
      `cannot read the time ${JSON.stringify(String(at))}: ${(error as Error).message}`,
    );
  }
}

/** Options of {@link openOfflineStore}. */
export interface OpenOfflineStoreOptions {
  /** The definitions reads resolve names against (a name alone means its highest defined version) and check stored tables with. */
  readonly definitions?: FeatureDefinitions;
  /** DuckDB `memory_limit` of the reader (more spills to disk or fails with FF_EXPORT). Default {@link READER_MEMORY_LIMIT}. */
  readonly memoryLimit?: string;
}

/**
 * The offline store of a DuckDB file, opened read-only; close it when done. While `featureflow ingest`
 * or `featureflow serve` holds the file (DuckDB lets no other process open it), the reads go to that
 * process over its local socket ({@link RemoteOfflineStore}), each consistent as of one checkpoint.
 */
export async function openOfflineStore(
  path: string,
  options: OpenOfflineStoreOptions = {},
): Promise<DuckDBOfflineStore | RemoteOfflineStore> {
  const memoryLimit = options.memoryLimit ?? READER_MEMORY_LIMIT;
  if (!MEMORY_SETTING.test(memoryLimit)) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `memoryLimit ${JSON.stringify(memoryLimit)} of the reader of ${path} must be a size such as "256MB" or "1GB"`,
    );
  }
  let db: Awaited<ReturnType<typeof openDuckDB>>;
  try {
    // The instance's buffer pool is bounded: a read-only DuckDB otherwise takes 80% of the machine's memory.
    db = await openDuckDB(path, { readOnly: true, memoryLimit });
  } catch (error) {
    if (!(error instanceof FeatureflowError && error.code === 'FF_STORE_LOCKED')) throw error;
    const remote = await RemoteOfflineStore.connect(path, { definitions: options.definitions });
    if (remote) return remote;
    throw new FeatureflowError(
      'FF_STORE_LOCKED',
      `the DuckDB file ${path} is in use by another process (DuckDB lets no other process open it), and that process does not ` +
        `share reads: nothing answers on ${RemoteOfflineStore.socketOf(path)} (an older featureflow, another program, or a ` +
        'featureflow still starting); try again in a moment, or stop that process to read the file, or run `featureflow ingest` ' +
        'or `featureflow serve` of this version, which answer reads while they run',
      { cause: error },
    );
  }
  const store = new DuckDBOfflineStore(db.connection, {
    ...(options.definitions ? { definitions: options.definitions } : {}),
    openConnection: () => db.connect(),
    queryMemory: false,
    checkStoredRows: true,
  });
  store.close = () => db.close();
  return store;
}

export { READER_MEMORY_LIMIT };
const MEMORY_SETTING = /^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i;

/** The DuckDB memory a feature query gets at least. */
const QUERY_MEMORY_LIMIT = '256MB';
const QUERY_MEMORY_BYTES = 256 * 1000 * 1000;
/** Most rowid ranges a streamed read of a view's values filters on (see rangesInKeyOrder). */
const MAX_STREAMED_RANGES = 64;
/** The most DuckDB memory a streamed export of a reading process gets (see withStreamMemory). */
const STREAM_MEMORY_LIMIT = '128MB';
const STREAM_MEMORY_BYTES = 128 * 1000 * 1000;
const MEMORY_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Bytes of a DuckDB memory setting as it prints it (`61.0 MiB`) or as it is given (`256MB`), or undefined. */
export function parseMemory(text: string): number | undefined {
  const match = /^\s*([\d.]+)\s*([a-z]+)\s*$/i.exec(text);
  const unit = match ? MEMORY_UNITS[match[2]!.toLowerCase()] : undefined;
  return match && unit ? Number(match[1]) * unit : undefined;
}
