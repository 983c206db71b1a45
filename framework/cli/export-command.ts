import { existsSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { type Command, Option } from 'commander';
import { FeatureflowError } from '../errors.js';
import { FeatureRegistry } from '../features/feature-registry.js';
import type { ExportProgress, ExportRequest } from '../interfaces/offline-store.js';
import type { CommandContext } from './main.js';

interface ExportFlags {
  version?: string;
  asOf?: string;
  spine?: string;
  timestampColumn?: string;
  ttl?: string;
  fullFeatureNames?: boolean;
  out: string;
}

/** A cli-progress bar on a terminal (stderr); nothing otherwise. */
class ExportProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private readonly started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(p: ExportProgress): void {
    if (!this.out.isTTY) return;
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        { stream: this.out, format: 'export [{bar}] {percentage}% | {rows} rows | {seconds}s', hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(100, 0, { rows: '-', seconds: 0 });
    }
    this.bar.update(p.done ? 100 : Math.floor(p.percent ?? 0), {
      rows: p.rows ?? (p.total === null ? '-' : `~${p.total}`),
      seconds: ((Date.now() - this.started) / 1000).toFixed(1),
    });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/**
 * Adds `featureflow export <view|service> [--version N] [--as-of ISO] [--spine file] --out file` to
 * the program: a view's latest rows, its rows as of a time, or a point-in-time-correct training set
 * of a view or service against a spine, as Parquet or an Arrow IPC file, with a manifest next to it.
 */
export function registerExportCommand(program: Command, context: CommandContext): Command {
  return program
    .command('export')
    .description(
      'write a feature view (latest or --as-of) or a training set (--spine) to Parquet or Arrow, with a manifest',
    )
    .argument('<name>', 'a feature view or a feature service')
    .option('--version <n>', 'view version (default: the highest configured, else the highest stored)')
    .option('--as-of <time>', 'the view as of this time (ISO 8601; without an offset it is UTC)')
    .option(
      '--spine <file>',
      'a .parquet or .csv of entity keys and event times (+ labels): export a point-in-time training set',
    )
    .option('--timestamp-column <name>', 'the spine column of event times', 'event_timestamp')
    .option('--ttl <duration>', "with --spine: features older than this are null (overrides the views' ttl), e.g. 7d")
    .option('--full-feature-names', 'with --spine: name features <view>__<feature>')
    .addOption(new Option('--out <file>', 'output file: .parquet, or .arrow (Arrow IPC file)').makeOptionMandatory())
    .action(async (name: string, flags: ExportFlags, cmd: Command) => {
      const config = await context.loadConfig(cmd);
      const registry = new FeatureRegistry(config.features);
      const service = registry.service(name);
      const version = flags.version === undefined ? undefined : Number(flags.version);
      if (version !== undefined && !(Number.isInteger(version) && version > 0)) {
        throw new FeatureflowError(
          'FF_EXPORT',
          `--version must be a positive integer, got ${JSON.stringify(flags.version)}`,
        );
      }
      if (flags.spine && flags.asOf)
        throw new FeatureflowError(
          'FF_EXPORT',
          '--spine and --as-of exclude each other: the spine gives each row its own time',
        );
      if (service && !flags.spine) {
        throw new FeatureflowError(
          'FF_EXPORT',
          `${name} is a feature service; give --spine with its entity keys and event times (or export one of its views)`,
        );
      }
      if (service && version !== undefined)
        throw new FeatureflowError('FF_EXPORT', `--version applies to a view, and ${name} is a feature service`);
      if (!existsSync(config.store.location)) {
        throw new FeatureflowError(
          'FF_EXPORT',
          `there is no store at ${config.store.location}; run \`featureflow ingest\` first (or point the store at it)`,
        );
      }
      const view = { name, ...(version === undefined ? {} : { version }) };
      const request: ExportRequest = flags.spine
        ? {
            trainingSet: {
              spine: flags.spine,
              features: service ?? [version === undefined ? name : `${name}@${version}`],
              timestampColumn: flags.timestampColumn,
              ...(flags.ttl ? { ttl: flags.ttl } : {}),
              fullFeatureNames: flags.fullFeatureNames ?? false,
            },
          }
        : { view, ...(flags.asOf ? { asOf: flags.asOf } : {}) };
      const store = await config.store.openReader(config.features);
      const progress = new ExportProgressView(process.stderr);
      try {
        const result = await store.export(request, flags.out, { onProgress: (p) => progress.update(p) });
        progress.stop();
        const views = result.manifest.views.map((v) => `${v.name} v${v.version}`).join(', ');
        process.stdout.write(
          `${result.rows} rows of ${views} written to ${result.path} (${result.manifest.format}); manifest ${result.manifestPath}; ` +
            `watermark ${result.manifest.lsnWatermark ?? '-'}\n`,
        );
      } finally {
        progress.stop();
        store.close();
      }
    });
}
