/**
 * `npm run demo`: handwritten digits stored as images in PostgreSQL, recognised as they are committed,
 * on embedded defaults (a throwaway PostgreSQL cluster unless DATABASE_URL is set; DuckDB, a memory
 * online store and the TF.js scorer in this process):
 *
 * 1. loads 8,000 labelled digits of the mnist package into a table, and featureflow snapshots them;
 * 2. exports the point-in-time training set (with its manifest) and trains the CNN on it with
 *    `--train`, or else uses the model shipped in features/digits/model (training takes minutes on a
 *    small machine: the demo would not finish in two);
 * 3. starts serving, then inserts the 2,000 held-out digits without their labels at a steady rate and
 *    shows each prediction as it arrives on the live stream, with its commit → prediction latency;
 * 4. ends with the accuracy against the held-back labels and where the latency went, per stage.
 *
 * Options: --digits <n> (held-out digits to insert, default 1000), --rate <per second> (default 50),
 * --train (train instead of using the shipped model), --epochs <n>. Ctrl-C stops it cleanly.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import pg from 'pg';
import { describeView, fingerprint } from '../../framework/features/fingerprint.js';
import { featureService } from '../../framework/features/index.js';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  memory,
  postgres,
  ServeRuntime,
  TOKENS,
  tfjs,
} from '../../index.js';
import { batchesOf, copyDigits } from '../digits/copy-digits.js';
import { PACKAGE_SPLIT } from '../digits/digit.js';
import { defineDigitsView } from '../digits/digits-view.js';
import { drawDigit } from '../digits/draw-digit.js';
import { DIGITS_MODEL_DIR } from '../digits/index.js';
import { loadMnistDigits } from '../digits/mnist-data.js';
import { type PgCluster, startPgCluster } from '../../testing/pg-cluster.js';

const TABLE = 'public.featureflow_demo_digits';
const SLOT = 'featureflow_demo_digits';
const STORE = '.featureflow/demo.duckdb';
const TRAINING_SET = '.featureflow/demo-digits-train.arrow';
const TRAINED_MODEL = '.featureflow/demo-model';

const { values: args } = parseArgs({
  options: {
    digits: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '50' },
    train: { type: 'boolean', default: false },
    epochs: { type: 'string', default: '10' },
  },
});
const heldOutCount = Math.min(Number(args.digits), PACKAGE_SPLIT.heldOut.to - PACKAGE_SPLIT.heldOut.from + 1);
const rate = Number(args.rate);
if (!(heldOutCount >= 1 && rate > 0)) throw new Error('--digits and --rate must be positive numbers');

const digitsView = defineDigitsView(TABLE);
const classifier = featureService({ name: 'digit_classifier', features: [digitsView.select('pixels')] });

function say(text = ''): void {
  process.stdout.write(`${text}\n`);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function bar(format: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format, hideCursor: true, noTTYOutput: true, notTTYSchedule: 2000, stopOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
}

/** An ISO time with microseconds (`….123456Z`, as the stream writes commit times) in ms since the epoch. */
function msOf(iso: string): number {
  const micros = /\.\d{3}(\d{3})Z$/.exec(iso);
  return Date.parse(iso) + (micros ? Number(micros[1]) / 1000 : 0);
}

/** One prediction as the live stream sends it (the fields the demo reads). */
interface StreamedPrediction {
  readonly key: readonly (number | string)[];
  readonly label?: string;
  readonly commitTime: string;
  readonly predictedAt: string;
  readonly latency: { readonly receivedMs: number; readonly featuresMs: number; readonly scoredMs: number };
}

/** Reads `GET /predictions/stream` (Server-Sent Events) and hands each prediction to `onPrediction`. */
async function listen(url: string, signal: AbortSignal, onPrediction: (p: StreamedPrediction) => void): Promise<void> {
  const response = await fetch(`${url}/predictions/stream`, { signal, headers: { accept: 'text/event-stream' } });
  if (!response.ok || !response.body) throw new Error(`the prediction stream answered ${response.status}`);
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      text += decoder.decode(chunk, { stream: true });
      let end = text.indexOf('\n\n');
      while (end >= 0) {
        const frame = text.slice(0, end);
        text = text.slice(end + 2);
        const data = frame.split('\n').find((line) => line.startsWith('data: '));
        if (frame.includes('event: prediction') && data) onPrediction(JSON.parse(data.slice(6)) as StreamedPrediction);
        end = text.indexOf('\n\n');
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

async function main(): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => {
    say('\nstopping (Ctrl-C)…');
    stop.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let cluster: PgCluster | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    say('starting a throwaway PostgreSQL cluster (wal_level=logical)…');
    cluster = await startPgCluster();
    url = cluster.url;
  }
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  let runtime: ServeRuntime | undefined;
  let container: Awaited<ReturnType<typeof createContainer>> | undefined;
  try {
    // A slot left by an interrupted run belongs to a change log that is about to be removed.
    await db.query(
      'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
      [SLOT],
    );
    await db.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await db.query(`DROP PUBLICATION IF EXISTS ${SLOT}`);
    await db.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, label int, pixels bytea)`);
    const all = loadMnistDigits();
    const train = all.slice(PACKAGE_SPLIT.train.from - 1, PACKAGE_SPLIT.train.to);
    const heldOut = all.slice(PACKAGE_SPLIT.heldOut.from - 1, PACKAGE_SPLIT.heldOut.from - 1 + heldOutCount);

    say(`\n1. ${train.length} labelled digits (the mnist package, ids 1-${train.length}) → ${TABLE}, with COPY`);
    const loading = bar('   {bar} {value}/{total} digits');
    loading.start(train.length, 0);
    await copyDigits(db, batchesOf(train), { table: TABLE, onProgress: (n) => loading.update(n) });
    loading.stop();

    rmSync(STORE, { force: true });
    rmSync(`${STORE}.wal`, { force: true });
    const base = {
      source: postgres({ connectionString: url, tables: [TABLE], slot: SLOT }),
      store: duckdb({ path: STORE }),
      features: { views: [digitsView], services: [classifier] },
      ingest: { heartbeatSeconds: 1 },
      logLevel: 'warn' as const,
    };
    say('   featureflow snapshots the table into the DuckDB change log and the feature view digits v1…');
    const snapshotting = bar('   {bar} {value}/{total} rows');
    snapshotting.start(train.length, 0);
    let snapshotRows = 0;
    const ingesting = await createContainer(defineConfig(base));
    let trainingModel: string = DIGITS_MODEL_DIR;
    try {
      await (await ingesting.getAsync(TOKENS.IngestEngine)).run({
        untilCaughtUp: true,
        signal: stop.signal,
        onBatch: (b) => {
          if (b.snapshot) snapshotting.update((snapshotRows += b.changes));
        },
      });
      snapshotting.stop();
      if (stop.signal.aborted) return;
      const store = await ingesting.getAsync(TOKENS.OfflineStore);
      const [view] = await store.status();
      say(
        `   feature view ${view!.view} v${view!.version}: ${view!.entities} images as 28×28 tensors, watermark ${view!.watermark}`,
      );

      say('\n2. the training set, point in time, through featureflow');
      const spine = train.map((d) => ({ id: d.id, event_timestamp: new Date() }));
      const exported = await store.export({ trainingSet: { spine, features: [digitsView] } }, TRAINING_SET);
      const v = exported.manifest.views[0]!;
      say(
        `   ${exported.rows} rows → ${TRAINING_SET}; manifest: view ${v.name} v${v.version}, fingerprint ${v.fingerprint.slice(0, 12)}…, LSN watermark ${exported.manifest.lsnWatermark}`,
      );
      if (args.train) {
        const { trainDigitClassifier } = await import('../digits/train-digits.js');
        const training = bar('   epoch {epoch}/{epochs} {bar} {value}/{total} loss {loss}');
        let shown = 0;
        const result = await trainDigitClassifier({
          store,
          view: digitsView,
          // The held-out digits arrive later without labels: judge on the last 1,000 labelled ones instead.
          split: {
            name: 'demo: ids 1-7000 train, 7001-8000 held out',
            train: { from: 1, to: 7000 },
            heldOut: { from: 7001, to: 8000 },
          },
          out: TRAINED_MODEL,
          epochs: Number(args.epochs),
          exportDir: '.featureflow',
          onProgress: (r) => {
            if (r.epoch !== shown) {
              shown = r.epoch;
              training.start(r.examples, 0, { epoch: r.epoch, epochs: r.epochs, loss: '-' });
            }
            training.update(r.seen, { loss: r.loss.toFixed(3) });
          },
        });
        training.stop();
        trainingModel = result.dir;
        say(
          `   trained the CNN in ${result.trainSeconds.toFixed(1)} s: ${(result.heldOutAccuracy * 100).toFixed(2)}% of the ${result.heldOutExamples} held-out digits (ids 7001-8000) right`,
        );
      } else {
        const shipped = JSON.parse(readFileSync(`${DIGITS_MODEL_DIR}/manifest.json`, 'utf8'));
        const traced = String(shipped.trainingSet.views[0].fingerprint);
        // The fingerprint covers the view's source table: the model's is the example's view on public.digits.
        const example = defineDigitsView();
        const same = fingerprint(describeView(example)) === traced;
        say(
          `   not training here (it takes minutes on a small machine; npm run demo -- --train does): using the model shipped in features/digits/model,\n` +
            `   ${shipped.version}, trained by npm run digits:train on ${shipped.training.examples} digits in ${shipped.training.seconds} s ` +
            `(${shipped.backend}), ${(shipped.heldOut.accuracy * 100).toFixed(2)}% right on the ${shipped.heldOut.examples} held out;\n` +
            `   its manifest traces it to view ${shipped.trainingSet.views[0].name} v${shipped.trainingSet.views[0].version} (fingerprint ${traced.slice(0, 12)}…) at LSN ${shipped.trainingSet.lsnWatermark}:\n` +
            (same
              ? `   the same definition as this demo's view, which reads ${TABLE} instead of ${example.source} (so its fingerprint differs)`
              : `   NOT the definition of today's digits view on ${example.source}: the view changed since the model was trained (npm run digits:train)`),
        );
      }
    } finally {
      snapshotting.stop();
      await closeContainer(ingesting);
    }
    if (stop.signal.aborted) return;
    if (!existsSync(`${trainingModel}/model.json`)) throw new Error(`no model in ${trainingModel}`);

    say(
      '\n3. serving: featureflow follows the table; each committed digit reaches the memory online store and the CNN',
    );
    const config = defineConfig({
      ...base,
      online: memory(),
      model: tfjs({ path: trainingModel, service: classifier, name: 'digits', workers: 1 }),
      serve: { port: 0 },
    });
    container = await createContainer(config, { serving: true });
    runtime = await ServeRuntime.start(container, config as never, { signal: stop.signal });
    if (stop.signal.aborted) return;
    const ingest = runtime.run({ signal: stop.signal });
    say(
      `   HTTP on ${runtime.url}: open it in a browser for the live page; GET /predictions/stream is the feed read here`,
    );

    const truth = new Map(heldOut.map((d) => [d.id, d]));
    const seen = new Map<number, StreamedPrediction>();
    const stages = {
      receivedMs: [] as number[],
      featuresMs: [] as number[],
      scoredMs: [] as number[],
      total: [] as number[],
    };
    let right = 0;
    const everyPicture = Math.max(1, Math.floor(heldOutCount / 5));
    const listening = new AbortController();
    let allSeen: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allSeen = resolve));
    const feed = listen(runtime.url, listening.signal, (p) => {
      const id = Number(p.key[0]);
      const digit = truth.get(id);
      if (!digit || seen.has(id)) return;
      seen.set(id, p);
      const ok = p.label === String(digit.label);
      if (ok) right++;
      // Commit (the source's clock) → prediction (ours): the same machine here.
      const total = Date.parse(p.predictedAt) - msOf(p.commitTime);
      stages.total.push(total);
      stages.receivedMs.push(p.latency.receivedMs);
      stages.featuresMs.push(p.latency.featuresMs);
      stages.scoredMs.push(p.latency.scoredMs);
      const line = `   #${id}  predicted ${p.label}  ${ok ? '✓' : `✗ (it is a ${digit.label})`}  commit → prediction ${total.toFixed(0).padStart(4)} ms`;
      if (seen.size % everyPicture === 1 || everyPicture === 1) {
        const picture = drawDigit(digit.pixels);
        say(`   ┌${'─'.repeat(28)}┐`);
        for (const row of picture) say(`   │${row}│`);
        say(`   └${'─'.repeat(28)}┘`);
      }
      say(line);
      if (seen.size === heldOut.length) allSeen();
    });
    await new Promise((r) => setTimeout(r, 200));

    say(`\n   inserting ${heldOut.length} held-out digits without their labels, ${rate} a second…\n`);
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    const started = Date.now();
    try {
      for (let i = 0; i < heldOut.length && !stop.signal.aborted; i++) {
        const wait = started + (i * 1000) / rate - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const d = heldOut[i]!;
        await writer.query(`INSERT INTO ${TABLE} (id, label, pixels) VALUES ($1, NULL, $2)`, [
          d.id,
          Buffer.from(d.pixels),
        ]);
      }
    } finally {
      await writer.end();
    }
    // Predictions of the last inserts are at most a few batches behind.
    const timeout = new Promise<void>((r) => setTimeout(r, 30_000).unref());
    await Promise.race([done, timeout, new Promise<void>((r) => stop.signal.addEventListener('abort', () => r()))]);
    listening.abort();
    await feed;
    stop.abort();
    await ingest;

    say(
      `\n4. live accuracy against the held-back labels: ${right} of ${seen.size} right (${((right / Math.max(seen.size, 1)) * 100).toFixed(2)}%)`,
    );
    if (seen.size < heldOut.length) {
      say(
        `   MISSING predictions: ${heldOut.length - seen.size} of the ${heldOut.length} inserted digits were not predicted`,
      );
      process.exitCode = 1;
    }
    const ms = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      return `p50 ${percentile(sorted, 50).toFixed(1).padStart(6)}  p95 ${percentile(sorted, 95).toFixed(1).padStart(6)}  p99 ${percentile(sorted, 99).toFixed(1).padStart(6)} ms`;
    };
    say('   where the latency went (each prediction carries its stages):');
    say(`     commit → received by featureflow    ${ms(stages.receivedMs)}`);
    say(`     received → features online           ${ms(stages.featuresMs)}`);
    say(`     features online → CNN's prediction   ${ms(stages.scoredMs)}`);
    say(`     commit → prediction, in all          ${ms(stages.total)}`);
    say(`\nthe change log, feature history and predictions are in ${STORE}; open it with DuckDB to explore.`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stop.abort();
    await runtime?.stop().catch(() => undefined);
    if (container) {
      // Cleaning up must not hide what failed: a change log that never opened has nothing to tear down.
      try {
        const source = await container.getAsync(TOKENS.Source);
        const record = (await (await container.getAsync(TOKENS.ChangeLog)).state()).sourceRecord;
        await source.teardown(record);
      } catch {
        // The throwaway cluster goes with its directory.
      }
      await closeContainer(container);
    }
    await db.end();
    await cluster?.stop();
  }
}

await main();
