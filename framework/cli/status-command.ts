import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { StoreInspection } from '../config.js';
import { FeatureflowError } from '../errors.js';
import { formatMicros } from '../features/instant.js';
import type { ChangeLogTableStats } from '../interfaces/index.js';
import { TOKENS } from '../tokens.js';
import { formatPosition } from '../types.js';
import type { CommandContext } from './main.js';
import { readProgress } from './status-file.js';

/** `featureflow status`: what the source holds, the change log's progress and counts, the feature views. */
export function registerStatusCommand(program: Command, context: CommandContext): void {
  program
    .command('status')
    .description("the source's position and lag, the change log's checkpoint and changes per table, the feature views")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await context.withContainer(cmd, async (container, config) => {
        const store = config.store;
        let tables: readonly ChangeLogTableStats[] = [];
        let views: StoreInspection['views'] = [];
        let checkpoint: string | null = null;
        let newestCommit: string | null = null;
        let behindMs: number | null = null;
        let logNote = 'no change log yet';
        let record = null;
        if (existsSync(store.location)) {
          try {
            const inspection = await store.inspect();
            ({ tables, views } = inspection);
            record = inspection.state.sourceRecord;
            checkpoint = inspection.state.checkpoint === null ? null : formatPosition(inspection.state.checkpoint);
            const newest = inspection.state.lastCommitTime;
            newestCommit = newest === null ? null : formatMicros(newest);
            logNote = inspection.state.snapshotDone ? 'snapshot complete' : 'snapshot incomplete';
          } catch (error) {
            if (!(error instanceof FeatureflowError && error.code === 'FF_STORE_LOCKED')) throw error;
            const progress = readProgress(store.progressFile);
            tables = progress?.tables ?? [];
            views = (progress?.views ?? []) as StoreInspection['views'];
            checkpoint = progress?.checkpoint ?? null;
            newestCommit = progress?.newestCommit ?? null;
            behindMs = progress?.behindMs ?? null;
            logNote = `in use by a running ${progress?.command ?? 'ingest'} (pid ${progress?.pid ?? '?'}), figures as of ${progress?.updatedAt ?? 'unknown'}`;
          }
        }
        const source = await (await container.getAsync(TOKENS.Source)).status(record);
        const report = {
          source: {
            kind: config.source.name,
            confirmed: source.confirmed === null ? null : formatPosition(source.confirmed),
            head: formatPosition(source.head),
            lag: source.lag,
            lagUnit: source.lagUnit,
            holds: source.holds,
          },
          changeLog: { location: store.location, state: logNote, checkpoint, newestCommit, behindMs, tables },
          featureViews: views,
        };
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const lines = [
          `source        ${config.source.name}: confirmed ${report.source.confirmed ?? '-'}, head ${report.source.head}, lag ${report.source.lag ?? '-'} ${source.lagUnit}`,
          ...Object.entries(source.holds).map(([what, state]) => `  ${what.padEnd(32)} ${state}`),
          `change log    ${store.location}: ${logNote}; checkpoint ${checkpoint ?? '-'}`,
          // The newest commit the store holds, and (from a running ingest) its lag when it became durable.
          `  ${'newest commit'.padEnd(32)} ${newestCommit ?? '-'}${behindMs === null ? '' : `, durable ${behindMs} ms after it`}`,
          ...tables.map(
            (t) =>
              `  ${t.table.padEnd(32)} ${String(t.changes).padStart(10)} changes  ${Object.entries(t.byOp)
                .map(([op, n]) => `${op}:${n}`)
                .join(' ')}`,
          ),
          ...(views.length > 0 ? ['feature views'] : []),
          ...views.map(
            (v) =>
              `  ${`${v.view} v${v.version}`.padEnd(32)} ${String(v.entities).padStart(10)} entities  ${v.rows} history rows  ` +
              `${v.deadLetters} dead letters  transform ${perRow(v.transformMicrosPerRow)}${v.active ? '' : '  (retired)'}`,
          ),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });
}

/** A transform's time per row as status prints it: `3.2 µs/row`, `-` before any row. */
function perRow(micros: number | null | undefined): string {
  if (micros === null || micros === undefined) return '-';
  return `${micros < 10 ? micros.toFixed(2) : micros < 100 ? micros.toFixed(1) : Math.round(micros)} µs/row`;
}
