import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.js';
import { FeatureflowError, isRetriable } from './errors.js';
import type { ChangeLog, ChangeLogState, Source } from './interfaces/index.js';
import { TOKENS } from './tokens.js';
import { batchLength, formatLsn, type Change, type ChangeBatch, type Lsn, type Row } from './types.js';

/** Options of one ingest run. */
export interface IngestOptions {
  /** Stop once everything committed before the run started is durable. */
  readonly untilCaughtUp?: boolean;
  /** Stops the run after the current batch. */
  readonly signal?: AbortSignal;
  /** Called after each durable batch (progress display, metrics). */
  readonly onBatch?: (info: BatchInfo) => unknown;
}

/**
 * What {@link IngestOptions.onBatch} hears after each batch; the engine waits for a returned promise
 * before the next batch (a complete batch's store transaction is committed by then).
 */
export interface BatchInfo {
  readonly changes: number;
  /** Changes per table and op (`r`, `c`, `u`, `d`, `t`) in this batch. */
  readonly tables: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly checkpoint: Lsn;
  /** Whether the batch completed a transaction (its checkpoint is durable). */
  readonly complete: boolean;
  readonly snapshot?: { readonly table: string; readonly done: boolean };
}

/** What one run did. */
export interface IngestResult {
  readonly snapshotted: boolean;
  readonly changesApplied: number;
  readonly checkpoint: Lsn | null;
}

/**
 * The ingestion engine: snapshot (first run, or after an interrupted one), then follow the source,
 * applying each batch durably to the change log before confirming it to the source. Retriable
 * failures (server restarts, dropped connections) reconnect with exponential backoff and resume from
 * the change log's checkpoint; whatever was in flight is rolled back and received again.
 */
@injectable()
export class IngestEngine {
  constructor(
    @inject(TOKENS.Config) private readonly config: ResolvedConfig,
    @inject(TOKENS.Source) private readonly source: Source,
    @inject(TOKENS.ChangeLog) private readonly log: ChangeLog,
    @inject(TOKENS.Logger) private readonly logger: Logger,
  ) {}

  async run(options: IngestOptions = {}): Promise<IngestResult> {
    const { signal } = options;
    await this.log.open();
    let state = await this.log.state();
    const added = state.tables ? this.addedTables(state.tables) : [];
    let prepared = await this.prepare(state);
    const until = options.untilCaughtUp ? await this.source.currentPosition() : undefined;
    let snapshotted = false;
    let applied = 0;

    if (!state.snapshotDone || !prepared.slotExists) {
      if (state.snapshotDone && !prepared.slotExists) {
        this.logger.warn({ slot: this.config.source.slot }, 'replication slot is missing; taking a new snapshot (the change log restarts)');
      } else if (state.checkpoint !== null) {
        this.logger.warn('the previous snapshot did not finish; taking it again from the start');
      }
      applied += await this.snapshot(options);
      snapshotted = true;
      state = await this.log.state();
      if (signal?.aborted) return { snapshotted, changesApplied: applied, checkpoint: state.checkpoint };
    } else if (added.length > 0) {
      applied += await this.snapshot(options, { tables: added, checkpoint: state.checkpoint! });
      snapshotted = true;
      state = await this.log.state();
      if (signal?.aborted) return { snapshotted, changesApplied: applied, checkpoint: state.checkpoint };
    }

    let backoffMs = 250;
    while (!signal?.aborted) {
      const current = await this.log.state();
      const from = current.checkpoint!;
      let rereadNext = false;
      try {
        // Tables whose rows changed without changes in the stream are read again before following on
        // (a failure here is retried like the stream's).
        if (current.rereads.length > 0) {
          for (const table of current.rereads) {
            const versions = (await this.log.schemas()).filter((s) => s.table === table).map((s) => s.version);
            applied += await this.snapshot(options, { tables: [table], checkpoint: from, reread: { version: Math.max(0, ...versions) + 1 } });
          }
          continue;
        }
        this.logger.info({ from: formatLsn(from), until: until === undefined ? undefined : formatLsn(until) }, 'following the replication stream');
        for await (const batch of this.source.follow(from, {
          signal,
          until,
          schemas: await this.log.schemas(),
          changes: this.log.needsChanges,
          tableStarts: current.tableStarts,
          ...(current.lastCommitTime === null ? {} : { minCommitTime: current.lastCommitTime }),
        })) {
          // Changes stored column-wise never lack a value: only `rest` may need filling.
          await this.fillUnchangedToast(batch.stored ? batch.stored.rest : batch.changes);
          await this.log.apply(batch);
          if (batch.complete) this.source.confirm(batch.checkpoint);
          applied += batchLength(batch);
          backoffMs = 250;
          await options.onBatch?.(batchInfo(batch));
          if (batch.rereads) {
            for (const [table, columns] of Object.entries(batch.rereads)) {
              this.logger.warn(
                { table, columns },
                'columns were added with a default, which PostgreSQL gives the rows already there without a change in the WAL: reading the table again',
              );
            }
            // The transaction that changed them is durable (and the tables recorded with it): stop following to read them.
            rereadNext = true;
            break;
          }
        }
        await this.log.rollback();
        if (rereadNext) continue;
        if (until !== undefined || signal?.aborted) break;
      } catch (error) {
        await this.log.rollback();
        if (!isRetriable(error) || signal?.aborted) throw error;
        this.logger.warn({ err: describe(error), retryInMs: backoffMs }, 'replication stream failed; reconnecting');
        await sleep(backoffMs, signal);
        backoffMs = Math.min(backoffMs * 2, this.config.ingest.maxBackoffSeconds * 1000);
        prepared = await this.retryPrepare(await this.log.state(), signal);
        if (!prepared.slotExists) {
          throw new FeatureflowError(
            'FF_PG_SLOT_LOST',
            `replication slot ${this.config.source.slot} disappeared while following; changes since the checkpoint ` +
              'may be gone from the WAL. Run `featureflow ingest` again to take a new snapshot',
          );
        }
      }
    }
    return { snapshotted, changesApplied: applied, checkpoint: (await this.log.state()).checkpoint };
  }

  /**
   * Has the source check the server and what the log recorded of it (refusing to resume past the
   * log's checkpoint or from another log's slot), then records what it will create, durably, before
   * it creates anything more.
   */
  private async prepare(state: ChangeLogState) {
    const prepared = await this.source.prepare({ record: state.sourceRecord, checkpoint: state.snapshotDone ? state.checkpoint : null });
    if (JSON.stringify(prepared.record) !== JSON.stringify(state.sourceRecord)) await this.log.saveSourceRecord(prepared.record);
    return prepared;
  }

  private async retryPrepare(state: ChangeLogState, signal?: AbortSignal) {
    for (let delay = 250; ; delay = Math.min(delay * 2, this.config.ingest.maxBackoffSeconds * 1000)) {
      try {
        return await this.prepare(state);
      } catch (error) {
        if (!isRetriable(error) || signal?.aborted) throw error;
        this.logger.warn({ err: describe(error), retryInMs: delay }, 'PostgreSQL unavailable; retrying');
        await sleep(delay, signal);
      }
    }
  }

  /**
   * The initial snapshot of every table; or, with `partial`, of some tables of a log that already
   * follows its slot (added to the configuration, or read again with `reread`): read in a temporary
   * slot's snapshot, their batches carrying the log's checkpoint, an added table joining the log's
   * tables as its snapshot commits. The stream then skips their changes committed before that
   * snapshot (`FollowOptions.tableStarts`).
   */
  private async snapshot(
    options: IngestOptions,
    partial?: { readonly tables: readonly string[]; readonly checkpoint: Lsn; readonly reread?: { readonly version: number } },
  ): Promise<number> {
    const point = await this.source.beginSnapshot({ temporary: partial !== undefined });
    let rows = 0;
    try {
      if (partial) this.logger.info({ tables: partial.tables, lsn: formatLsn(point.lsn) }, partial.reread ? 'reading the table again' : 'taking a snapshot of the tables added to the configuration');
      else await this.log.reset({ tables: this.config.source.tables, lsn: point.lsn });
      for await (const batch of readAhead(this.source.snapshot({ changes: this.log.needsChanges, ...partial }))) {
        await this.log.apply(batch);
        rows += batchLength(batch);
        await options.onBatch?.(batchInfo(batch, partial?.reread ? partial.tables[0] : undefined));
        if (options.signal?.aborted) break;
      }
    } finally {
      // A table cut short (stop or failure) is rolled back whole; the next run snapshots again.
      await this.log.rollback();
      await this.source.endSnapshot();
    }
    this.logger.info({ rows, lsn: formatLsn(point.lsn) }, 'snapshot done');
    return rows;
  }

  /** The configured tables the log does not hold yet (each gets a snapshot of its own); a table no longer configured is refused. */
  private addedTables(stored: readonly string[]): string[] {
    const configured = this.config.source.tables;
    const removed = stored.filter((t) => !configured.includes(t));
    if (removed.length > 0) {
      throw new FeatureflowError(
        'FF_TABLES_CHANGED',
        `the change log in ${this.config.store.path} holds tables ${removed.join(', ')}, which the configuration no longer ` +
          `lists (it lists ${configured.join(', ')}); add them back to source.tables (tables can be added, not removed), ` +
          'or start a new log: run `featureflow teardown --yes` and point store.path at a new file (or delete the old one)',
      );
    }
    return configured.filter((t) => !stored.includes(t));
  }

  /**
   * pgoutput sends 'u' for an unchanged TOASTed value in an update; fill each such column from the
   * row's previous image: earlier in this batch, else the newest one in the change log. Linear in the
   * batch, with one log lookup per table (an UPDATE of a whole TOASTed table needs every row's image).
   */
  private async fillUnchangedToast(changes: readonly Change[]): Promise<void> {
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
        const earlier = rows?.get(stableKey(lookupKey));
        if (earlier) plan.push({ change, from: earlier });
        else {
          const keys = lookups.get(change.table) ?? [];
          lookups.set(change.table, keys);
          plan.push({ change, from: { table: change.table, index: keys.push(lookupKey) - 1 } });
        }
      }
      if (!rows) latest.set(change.table, (rows = new Map()));
      if (change.before && change.key) rows.delete(stableKey(pick(change.before, change.key)));
      if (change.after && change.key) rows.set(stableKey(change.key), change);
    }
    const found = new Map<string, (Row | null)[]>();
    for (const [table, keys] of lookups) found.set(table, await this.log.lastRows(table, keys));
    // In batch order, so an image filled here is complete before a later change copies from it.
    for (const { change, from } of plan) {
      const previous = 'op' in from ? from.after : found.get(from.table)![from.index];
      const columns = change.unchangedToast!;
      if (!previous) {
        // Not retriable: the same change would fail again on every reconnect.
        throw new FeatureflowError(
          'FF_TOAST_UNFILLED',
          `an update of ${change.table} left TOASTed columns ${columns.join(', ')} unchanged, but no earlier image ` +
            `of that row is in the change log ${this.config.store.path}; set REPLICA IDENTITY FULL on the table so PostgreSQL ` +
            'sends the old values, and take a new snapshot (`featureflow teardown --yes`, then `featureflow ingest`)',
        );
      }
      for (const column of columns) change.after![column] = previous[column] ?? null;
      delete change.unchangedToast;
    }
  }
}

/** What onBatch hears of a batch; `reread` names the table a batch of a table read again belongs to (its rows come as stream rows). */
function batchInfo(batch: ChangeBatch, reread?: string): BatchInfo {
  const tables: Record<string, Record<string, number>> = {};
  const count = (table: string, op: string, n = 1) => {
    const ops = (tables[table] ??= {});
    ops[op] = (ops[op] ?? 0) + n;
  };
  const snapshot = batch.snapshot;
  if (snapshot) count(snapshot.table, 'r', snapshot.rows.length);
  else if (batch.stored) {
    for (const g of batch.stored.groups) for (const op of g.ops) count(g.table, String.fromCharCode(op));
    for (const c of batch.stored.rest) count(c.table, c.op);
  } else for (const c of batch.changes) count(c.table, c.op);
  const changes = batchLength(batch);
  const base = { changes, tables, checkpoint: batch.checkpoint, complete: batch.complete };
  if (snapshot) return { ...base, snapshot: { table: snapshot.table, done: snapshot.done } };
  if (reread) return { ...base, snapshot: { table: reread, done: batch.complete } };
  return base;
}

/**
 * Yields what `source` yields, asking it for the next item as soon as one is handed out: the snapshot
 * reader decodes batch N+1 while the store commits batch N (mostly I/O on the store's own threads).
 * On exit, waits for that read to settle before closing the source (it ends at the next full batch).
 */
async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let next = it.next();
  let done = false;
  try {
    while (true) {
      const result = await next;
      if (result.done) {
        done = true;
        return;
      }
      next = it.next();
      // A failure of the read ahead surfaces when it is awaited (or is moot after an earlier failure).
      next.catch(() => undefined);
      yield result.value;
    }
  } finally {
    if (!done) {
      await next.catch(() => undefined);
      await it.return?.();
    }
  }
}

function pick(row: Row, keyShape: Row): Row {
  const out: Row = {};
  for (const k of Object.keys(keyShape)) out[k] = row[k] ?? null;
  return out;
}

/** The key's values in its column order; an int4 and an int8 of the same value give the same text. */
function stableKey(key: Row): string {
  return Object.values(key)
    .map((v) => String(v))
    .join('\0');
}

function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return e?.code ? `${e.code}: ${e.message ?? ''}` : String(e?.message ?? error);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
