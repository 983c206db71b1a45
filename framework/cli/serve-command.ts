import type { Command } from 'commander';
import { FeatureflowError } from '../errors.js';
import { ServeRuntime } from '../serving/serve-runtime.js';
import { TOKENS } from '../tokens.js';
import { formatPosition } from '../types.js';
import type { CommandContext } from './main.js';
import { ProgressPublisher } from './progress-publisher.js';
import { stopOnSignals } from './stop-signals.js';

/**
 * How often the feature views' figures (`status`) are read again while serving: they count every
 * history row, work that a prediction arriving meanwhile would wait on.
 */
const VIEWS_INTERVAL_MS = 60_000;

/**
 * `featureflow serve`: the ingest, the online store, event-driven predictions and the HTTP service in
 * one process. SIGINT or SIGTERM: the ingest stops after its current batch, HTTP drains, exit 0.
 */
export function registerServeCommand(program: Command, context: CommandContext): void {
  program
    .command('serve')
    .description('follow the source and serve features and predictions over HTTP (Ctrl-C or SIGTERM drains and stops)')
    .option('--until-caught-up', 'stop once everything committed before the start is served (for scripts and tests)')
    .option(
      '--ingest',
      'with a bus between processes (bus: kafkaBus(…)), also read the source and publish to the bus (one process only; default: `featureflow ingest` does)',
    )
    .action(async (opts: { untilCaughtUp?: boolean; ingest?: boolean }, cmd: Command) => {
      await context.withContainer(
        cmd,
        async (container, config) => {
          if (config.bus && opts.untilCaughtUp) {
            // What a serve process consumes is what the group assigns it, published by another process: no end to wait for.
            throw new FeatureflowError(
              'FF_CONFIG_INVALID',
              `serve --until-caught-up does not work with the ${config.bus.name} bus: a serve process consumes the partitions ` +
                'its group gives it, with no end to catch up with; run `featureflow ingest --until-caught-up` to publish what is committed, ' +
                'and stop serve processes with SIGTERM',
            );
          }
          const stop = stopOnSignals('after the current batch, draining requests');
          try {
            const runtime = await ServeRuntime.start(container, config, {
              signal: stop.signal,
              ...(opts.ingest ? { ingest: true } : {}),
            });
            process.stdout.write(`serving on ${runtime.url}\n`);
            if (config.bus) {
              process.stdout.write(
                runtime.ingests
                  ? `reading the source and publishing feature rows on the ${config.bus.name} bus; consuming the bus in the group too\n`
                  : `consuming feature rows from the ${config.bus.name} bus (the source is read by \`featureflow ingest\`, or one \`serve --ingest\`)\n`,
              );
            }
            // The process that reads the source holds the store; `status` reads what it publishes.
            const progress = runtime.ingests
              ? await ProgressPublisher.start({
                  file: config.store.progressFile,
                  command: 'serve',
                  log: await container.getAsync(TOKENS.ChangeLog),
                  offline: await container.getAsync(TOKENS.OfflineStore),
                  viewsIntervalMs: VIEWS_INTERVAL_MS,
                  logger: await container.getAsync(TOKENS.Logger),
                })
              : undefined;
            try {
              if (stop.signal.aborted) return;
              const result = await runtime.run({
                untilCaughtUp: opts.untilCaughtUp,
                signal: stop.signal,
                ...(progress ? { onBatch: (b) => progress.heard(b) } : {}),
              });
              await runtime.idle();
              await progress?.finish(result.checkpoint);
              process.stdout.write(
                `${result.changesApplied} changes applied; checkpoint ${result.checkpoint === null ? '-' : formatPosition(result.checkpoint)}\n`,
              );
            } finally {
              progress?.close();
              await runtime.stop();
            }
          } finally {
            stop.release();
          }
        },
        { serving: true },
      );
    });
}
