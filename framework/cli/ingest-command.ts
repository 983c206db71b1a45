import type { Command } from 'commander';
import { TOKENS } from '../tokens.js';
import { formatPosition } from '../types.js';
import type { CommandContext } from './main.js';
import { IngestProgressView } from './progress.js';
import { ProgressPublisher } from './progress-publisher.js';
import { stopOnSignals } from './stop-signals.js';

/** How often the feature views' figures (`status`) are read again while ingesting. */
const VIEWS_INTERVAL_MS = 5000;

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
        let reads: { close(): Promise<void> } | undefined;
        let progress: ProgressPublisher | undefined;
        try {
          await log.open();
          // Exports and readers of other processes read through this one while it holds the store.
          reads = await config.store.shareReads?.(log);
          // A running ingest holds the store; `status` reads what it publishes.
          const publisher = await ProgressPublisher.start({
            file: config.store.progressFile,
            command: 'ingest',
            log,
            offline,
            viewsIntervalMs: VIEWS_INTERVAL_MS,
            logger: await container.getAsync(TOKENS.Logger),
          });
          progress = publisher;
          if (config.bus)
            process.stdout.write(
              `publishing committed feature rows on the ${config.bus.name} bus for \`featureflow serve\`\n`,
            );
          const result = await engine.run({
            untilCaughtUp: opts.untilCaughtUp,
            signal: stop.signal,
            onBatch: (b) => {
              view.update(b);
              return publisher.heard(b);
            },
          });
          view.stop();
          await publisher.finish(result.checkpoint);
          process.stdout.write(
            `${result.snapshotted ? 'snapshot taken; ' : ''}${result.changesApplied} changes applied; checkpoint ` +
              `${result.checkpoint === null ? '-' : formatPosition(result.checkpoint)}\n`,
          );
        } finally {
          progress?.close();
          view.stop();
          stop.release();
          await reads?.close();
        }
      });
    });
}
