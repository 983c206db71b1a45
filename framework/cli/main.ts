import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Container } from 'inversify';
import type { ResolvedConfig } from '../config.js';
import { closeContainer } from '../container.js';
import { FeatureflowError } from '../errors.js';
import type { ChangeLogState, ChangeLogTableStats } from '../interfaces/index.js';
import { TOKENS } from '../tokens.js';
import { formatLsn } from '../types.js';
import { loadConfig, type ConfigOptions } from './load-config.js';
import { IngestProgressView } from './progress.js';
import { readProgress, writeProgress, type FeatureViewSummary } from './status-file.js';

/** What `status` learns from the offline store (read-only). */
export interface StoreInspection {
  readonly state: ChangeLogState;
  readonly tables: ChangeLogTableStats[];
  readonly views: readonly FeatureViewSummary[];
}

/** What the CLI needs from the composition root. */
export interface CliDeps {
  createContainer(config: ResolvedConfig): Promise<Container>;
  /** Reads the store without writing (DuckDB file opened read-only); FF_STORE_LOCKED while an ingest runs. */
  inspectStore(config: ResolvedConfig): Promise<StoreInspection>;
  /** The feature views of the store a running ingest holds, between its batches. */
  liveViews?(container: Container): Promise<readonly FeatureViewSummary[]>;
  /** Adds further commands (e.g. export) to the program. */
  extend?(program: Command, deps: { loadConfig: typeof loadConfig; createContainer: (config: ResolvedConfig) => Promise<Container> }): void;
}

/** Builds the `featureflow` command-line program. */
export function buildProgram(deps: CliDeps): Command {
  const program = new Command('featureflow')
    .description('PostgreSQL → ML features, continuously: snapshot + logical replication into DuckDB')
    .option('-c, --config <file>', 'config file (default: featureflow.config.ts)')
    .option('--tables <list>', 'comma-separated tables to capture (overrides source.tables)')
    .showHelpAfterError();

  const withContainer = async <T>(cmd: Command, body: (container: Container, config: ResolvedConfig) => Promise<T>): Promise<T> => {
    const config = await loadConfig(cmd.optsWithGlobals<ConfigOptions>());
    const container = await deps.createContainer(config);
    try {
      return await body(container, config);
    } finally {
      await closeContainer(container);
    }
  };

  program
    .command('ingest')
    .description('snapshot the tables, then follow the replication slot until stopped (Ctrl-C stops after the current batch)')
    .option('--until-caught-up', 'stop once everything committed before the start is applied')
    .action(async (opts: { untilCaughtUp?: boolean }, cmd: Command) => {
      await withContainer(cmd, async (container, config) => {
        const engine = await container.getAsync(TOKENS.IngestEngine);
        const log = await container.getAsync(TOKENS.ChangeLog);
        const controller = new AbortController();
        let interrupts = 0;
        const onSignal = () => {
          interrupts += 1;
          if (interrupts > 1) process.exit(130);
          process.stderr.write('stopping after the current batch (Ctrl-C again to quit at once)\n');
          controller.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        const view = new IngestProgressView(process.stderr);
        const counts = new Map<string, { table: string; changes: number; byOp: Record<string, number> }>();
        let last = 0;
        let checkpoint: bigint | null = null;
        let views: readonly FeatureViewSummary[] | undefined;
        let viewsAt = 0;
        const publish = async (force = false) => {
          if (!force && Date.now() - last < 1000) return;
          last = Date.now();
          // Between batches (the last one committed) the store can be read on the ingest's connection.
          if (deps.liveViews && (force || last - viewsAt >= 5000)) {
            viewsAt = last;
            views = await deps.liveViews(container);
          }
          writeProgress(config.store.path, {
            pid: process.pid,
            updatedAt: new Date().toISOString(),
            checkpoint: checkpoint === null ? null : formatLsn(checkpoint),
            tables: [...counts.values()],
            ...(views ? { views } : {}),
          });
        };
        try {
          await log.open();
          for (const s of await log.stats()) counts.set(s.table, { ...s, byOp: { ...s.byOp } });
          const result = await engine.run({
            untilCaughtUp: opts.untilCaughtUp,
            signal: controller.signal,
            onBatch: (b) => {
              for (const [table, ops] of Object.entries(b.tables)) {
                const entry = counts.get(table) ?? { table, changes: 0, byOp: {} };
                for (const [op, n] of Object.entries(ops)) {
                  entry.changes += n;
                  entry.byOp[op] = (entry.byOp[op] ?? 0) + n;
                }
                counts.set(table, entry);
              }
              view.update(b);
              if (!b.complete) return;
              checkpoint = b.checkpoint;
              return publish();
            },
          });
          view.stop();
          checkpoint = result.checkpoint;
          await publish(true);
          process.stdout.write(
            `${result.snapshotted ? 'snapshot taken; ' : ''}${result.changesApplied} changes applied; checkpoint ` +
              `${result.checkpoint === null ? '-' : formatLsn(result.checkpoint)}\n`,
          );
        } finally {
          view.stop();
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      });
    });

  program
    .command('status')
    .description('slot, confirmed LSN, lag in bytes, changes per table in the change log')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContainer(cmd, async (container, config) => {
        const source = await container.getAsync(TOKENS.Source);
        const slot = await source.status();
        let tables: ChangeLogTableStats[] = [];
        let views: StoreInspection['views'] = [];
        let checkpoint: string | null = null;
        let logNote = 'no change log yet';
        if (existsSync(config.store.path)) {
          try {
            const inspection = await deps.inspectStore(config);
            tables = inspection.tables;
            views = inspection.views;
            checkpoint = inspection.state.checkpoint === null ? null : formatLsn(inspection.state.checkpoint);
            logNote = inspection.state.snapshotDone ? 'snapshot complete' : 'snapshot incomplete';
          } catch (error) {
            if (!(error instanceof FeatureflowError && error.code === 'FF_STORE_LOCKED')) throw error;
            const progress = readProgress(config.store.path);
            tables = progress?.tables ?? [];
            views = progress?.views ?? [];
            checkpoint = progress?.checkpoint ?? null;
            logNote = `in use by a running ingest (pid ${progress?.pid ?? '?'}), figures as of ${progress?.updatedAt ?? 'unknown'}`;
          }
        }
        const report = {
          slot: slot.slot,
          slotExists: slot.exists,
          slotActive: slot.active,
          confirmedFlushLsn: slot.confirmedFlushLsn === null ? null : formatLsn(slot.confirmedFlushLsn),
          currentWalLsn: formatLsn(slot.currentWalLsn),
          lagBytes: slot.lagBytes === null ? null : Number(slot.lagBytes),
          publication: slot.publication,
          publicationExists: slot.publicationExists,
          changeLog: { path: config.store.path, state: logNote, checkpoint, tables },
          featureViews: views,
        };
        if (opts.json) {
          process.stdout.write(JSON.stringify(report, null, 2) + '\n');
          return;
        }
        const lines = [
          `slot          ${report.slot} (${report.slotExists ? (report.slotActive ? 'active' : 'inactive') : 'missing'})`,
          `confirmed LSN ${report.confirmedFlushLsn ?? '-'}   current WAL ${report.currentWalLsn}   lag ${report.lagBytes ?? '-'} bytes`,
          `publication   ${report.publication} (${report.publicationExists ? 'exists' : 'missing'})`,
          `change log    ${report.changeLog.path}: ${logNote}; checkpoint ${checkpoint ?? '-'}`,
          ...tables.map((t) => `  ${t.table.padEnd(32)} ${String(t.changes).padStart(10)} changes  ${Object.entries(t.byOp).map(([op, n]) => `${op}:${n}`).join(' ')}`),
          ...(views.length > 0 ? ['feature views'] : []),
          ...views.map(
            (v) =>
              `  ${`${v.view} v${v.version}`.padEnd(32)} ${String(v.entities).padStart(10)} entities  ${v.rows} history rows  ` +
              `${v.deadLetters} dead letters${v.active ? '' : '  (retired)'}`,
          ),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      });
    });

  program
    .command('teardown')
    .description('drop the replication slot and the publication (the DuckDB file stays)')
    .addOption(new Option('--yes', 'confirm: the slot and the WAL it holds are released'))
    .action(async (opts: { yes?: boolean }, cmd: Command) => {
      if (!opts.yes) {
        throw new FeatureflowError('FF_CONFIG_INVALID', 'teardown drops the replication slot and publication; run it again with --yes to confirm');
      }
      await withContainer(cmd, async (container, config) => {
        // What the log recorded of what it created: the slot and publication are dropped only if it did.
        const record = existsSync(config.store.path) ? (await deps.inspectStore(config)).state.sourceRecord : null;
        const source = await container.getAsync(TOKENS.Source);
        const result = await source.teardown(record);
        const left = '(left alone: this change log did not create it; drop it yourself if nothing uses it)';
        const slotNote = result.slotDropped ? 'dropped' : result.notOwned.includes(`slot ${config.source.slot}`) ? left : 'did not exist';
        const pubNote = result.publicationDropped ? 'dropped' : result.notOwned.includes(`publication ${config.source.publication}`) ? left : 'did not exist';
        process.stdout.write(`slot ${config.source.slot}: ${slotNote}; publication ${config.source.publication}: ${pubNote}\n`);
      });
    });

  deps.extend?.(program, { loadConfig, createContainer: deps.createContainer });
  return program;
}

/** Runs the CLI; returns the exit code. Errors print their code and message, never a stack for known ones. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    const e = error as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
    if (error instanceof FeatureflowError) {
      process.stderr.write(`featureflow: error [${error.code}]: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`featureflow: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}
