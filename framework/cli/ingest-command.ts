import type { Command } from 'commander';
import { formatMicros } from '../features/instant.js';
import { msBehind } from '../ingest/batch-info.js';
import type { ChangeLogTableStats } from '../interfaces/index.js';
import { TOKENS } from '../tokens.js';
import { formatPosition, type Position } from '../types.js';
import type { CommandContext } from './main.js';
import { IngestProgressView } from './progress.js';
import { stopOnSignals } from './stop-signals.js';
import { writeProgress, type FeatureViewSummary } from './status-file.js';

/** `featureflow ingest`: snapshot, then follow the source until stopped (or caught up). */
export function registerIngestCommand(program: Command, context: CommandContext): void {
  program
    .command('ingest')
    .description('snapshot the tables, then follow the source until stopped (Ctrl-C stops after the current batch)')
    .option('--until-caught-up', 'stop once everything committed before the start is applied')
    .action(async (opts: { untilCaughtUp?: boolean }, cmd: Command) => {
      await context.withContainer(cmd, async (container, config) => {
        const engine = await container.getAsync(TOKENS.IngestEngine);
        const log = await container.getAsync(TOKENS.ChangeLog);
        const offline = await container.getAsync(TOKENS.OfflineStore);
        const stop = stopOnSignals('after the current batch');
        const view = new IngestProgressView(process.stderr);
        const counts = new Map<string, { table: string; changes: number; byOp: Record<string, number> }>();
        let last = 0;
        let checkpoint: Position | null = null;
        let newestCommit: bigint | null = null;
        let behindMs: number | null = null;
        let views: readonly FeatureViewSummary[] | undefined;
        let viewsAt = 0;
        // A running ingest holds the store; `status` reads what it publishes here.
        let trailing: NodeJS.Timeout | undefined;
        const write = () => {
          clearTimeout(trailing);
          trailing = undefined;
          last = Date.now();
          writeProgress(config.store.progressFile, {
            pid: process.pid,
            updatedAt: new Date(last).toISOString(),
            checkpoint: checkpoint === null ? null : formatPosition(checkpoint),
            newestCommit: newestCommit === null ? null : formatMicros(newestCommit),
            behindMs,
            tables: [...counts.values()],
            ...(views ? { views } : {}),
          });
        };
        const publish = async (force = false) => {
          if (!force && Date.now() - last < 1000) {
            // At most once a second, and the last batch before the source goes quiet still shows.
            trailing ??= setTimeout(write, 1000 - (Date.now() - last)).unref();
            return;
          }
          // Between batches (the last one committed) the store can be read on the ingest's connection.
          if (force || Date.now() - viewsAt >= 5000) {
            viewsAt = Date.now();
            views = await offline.status();
          }
          write();
        };
        const count = (stats: readonly ChangeLogTableStats[]) => {
          for (const s of stats) counts.set(s.table, { ...s, byOp: { ...s.byOp } });
        };
        let reads: { close(): Promise<void> } | undefined;
        try {
          await log.open();
          // Exports and readers of other processes read through this one while it holds the store.
          reads = await config.store.shareReads?.(log);
          count(await log.stats());
          newestCommit = (await log.state()).lastCommitTime;
          if (config.bus)
            process.stdout.write(
              `publishing committed feature rows on the ${config.bus.name} bus for \`featureflow serve\`\n`,
            );
          const result = await engine.run({
            untilCaughtUp: opts.untilCaughtUp,
            signal: stop.signal,
            onBatch: async (b) => {
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
              if (b.commitTime !== undefined) {
                newestCommit = b.commitTime;
                behindMs = msBehind(b.commitTime);
              } else if (b.snapshot?.done) {
                // A snapshot's rows count at the time it was taken, as the store records them.
                newestCommit = (await log.state()).lastCommitTime;
              }
              return publish();
            },
          });
          view.stop();
          checkpoint = result.checkpoint;
          await publish(true);
          process.stdout.write(
            `${result.snapshotted ? 'snapshot taken; ' : ''}${result.changesApplied} changes applied; checkpoint ` +
              `${result.checkpoint === null ? '-' : formatPosition(result.checkpoint)}\n`,
          );
        } finally {
          clearTimeout(trailing);
          view.stop();
          stop.release();
          await reads?.close();
        }
      });
    });
}
