import type { Container } from 'inversify';
import type { Logger } from 'pino';
import { FeatureflowError } from '../errors.js';
import type { ResolvedConfig } from '../config.js';
import type { FeatureView } from '../features/feature-view.js';
import type { IngestOptions, IngestResult } from '../ingest/ingest-engine.js';
import type { Materializer } from '../features/materialize.js';
import type { ChangeBus, ChangeLog, OfflineStore, OnlineStore, PredictionSink, Scorer } from '../interfaces/index.js';
import { TOKENS } from '../tokens.js';
import { formatPosition, parsePosition, type Position } from '../types.js';
import { buildHttpApp, type HttpServer } from './http-app.js';
import { OnlineUpdater, type OnlineLoader } from './online-updater.js';
import { ScoringLoop } from './scoring-loop.js';
import { ServingContext } from './serving-context.js';

/** Feature rows per online-store write while loading a view from the offline store. */
const LOAD_BATCH = 10_000;

/**
 * Loads a view's latest values from the offline store into the online store, streamed in bounded
 * batches; returns the position they reflect.
 */
export function offlineLoader(offline: OfflineStore, logger: Logger): OnlineLoader {
  return async (view: FeatureView, store: OnlineStore) => {
    if (!offline.latestRows) return null;
    // A view without history yet (its table not ingested so far) has nothing to load: the stream fills it.
    const known = (await offline.status()).find((s) => s.view === view.name && s.version === view.version);
    if (!known || known.rows === 0) return known?.watermark ? parsePosition(known.watermark) : null;
    const started = Date.now();
    const scan = await offline.latestRows(view, { batchSize: LOAD_BATCH });
    let entities = 0;
    for await (const rows of scan.rows) {
      await store.write([{ view, rows }]);
      entities += rows.length;
    }
    logger.info(
      { view: view.name, version: view.version, entities, ms: Date.now() - started },
      'online store loaded from the offline store',
    );
    return scan.watermark;
  };
}

/**
 * `featureflow serve` in one process: the ingest follows the source, and every batch's feature rows
 * reach the online store (through the bus), the scoring loop, the prediction sinks and the live
 * stream, while the HTTP service answers. Start order: the scorer and the sinks open; the loop and
 * the updater subscribe; HTTP listens (not ready yet); the online store opens and is loaded from the
 * offline store; predictions a crash left unmade are made; then the ingest runs. Stop in reverse.
 */
export class ServeRuntime {
  private constructor(
    private readonly parts: {
      readonly context: ServingContext;
      readonly http: HttpServer;
      readonly updater: OnlineUpdater;
      readonly loop: ScoringLoop | undefined;
      readonly bus: ChangeBus;
      readonly sinks: readonly PredictionSink[];
      readonly scorer: Scorer | undefined;
      readonly store: OnlineStore;
      /** Reads of the store by other processes (exports), answered by this one while it holds the store. */
      readonly reads: { close(): Promise<void> } | undefined;
      /** Closes the offline store's reader a consuming process loaded the online store from. */
      readonly closeReader: () => void;
    },
    /**
     * False for a process that only consumes a bus between processes (Kafka): another process
     * (`featureflow ingest`) reads the source and holds the offline store.
     */
    readonly ingests: boolean,
    /** Where the HTTP service listens. */
    readonly url: string,
    private readonly container: Container,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens everything and loads the online store; the ingest starts with {@link run}. An online store
   * that cannot be reached is retried until it can (HTTP answers meanwhile, `/health` says why it is
   * not ready); `options.signal` ends the wait (check it before {@link run}).
   */
  static async start(container: Container, config: ResolvedConfig, options: ServeOptions = {}): Promise<ServeRuntime> {
    const logger = (await container.getAsync(TOKENS.Logger)).child({ component: 'serve' });
    const bus = await container.getAsync(TOKENS.ChangeBus);
    if (bus.listen && !config.online.shared) {
      throw new FeatureflowError(
        'FF_CONFIG_INVALID',
        `serve consumes a bus between processes, where each process takes a share of the entities; the ${config.online.name} online store ` +
          "would hold only this process's share, and GET /features would answer 404 for the rest. Use a store every process reaches: " +
          "online: redis({ url: 'redis://…' })",
      );
    }
    // On a bus between processes one process reads the source (`featureflow ingest`, or one `serve
    // --ingest`): a replication slot has one reader, and the offline store one writer.
    const ingests = bus.listen === undefined || options.ingest === true;
    const log = ingests ? await container.getAsync(TOKENS.ChangeLog) : undefined;
    await log?.open();
    // `featureflow export` and other readers read through this one while it holds the store.
    const reads = log ? await config.store.shareReads?.(log) : undefined;
    try {
      return await ServeRuntime.open(container, config, logger, { log, reads, bus }, options.signal);
    } catch (error) {
      await reads?.close();
      throw error;
    }
  }

  private static async open(
    container: Container,
    config: ResolvedConfig,
    logger: Logger,
    held: { log: ChangeLog | undefined; reads: { close(): Promise<void> } | undefined; bus: ChangeBus },
    signal: AbortSignal | undefined,
  ): Promise<ServeRuntime> {
    const { log, reads, bus } = held;
    const registry = await container.getAsync(TOKENS.FeatureRegistry);
    const materializer = await container.getAsync(TOKENS.Materializer);
    // A consuming process loads the online store (when it needs a load) through a reader of the
    // offline store, which a running ingest answers. A shared store another process has loaded
    // meanwhile (this one cannot reach the reader, or lost the race) is taken as it is.
    let reader: OfflineStore | undefined;
    const load: OnlineLoader = log
      ? offlineLoader(await container.getAsync(TOKENS.OfflineStore), logger)
      : async (view, into) => {
          if (!(await into.needsLoad(view))) return into.watermark(view);
          reader ??= await config.store.openReader(config.features);
          return offlineLoader(reader, logger)(view, into);
        };
    const store = await container.getAsync(TOKENS.OnlineStore);
    const scorer = config.model ? await container.getAsync(TOKENS.Scorer) : undefined;
    await scorer?.open();
    // On a bus between processes each process predicts for its share of the entities: the store's own
    // table would hold only this process's share, so only the shared sinks are written.
    const sinks = (config.model ? await container.getAllAsync(TOKENS.PredictionSink) : []).filter(
      (sink) => !(bus.listen && sink.inStore),
    );
    for (const sink of sinks) await sink.open();
    const context = new ServingContext({ store, registry, materializer, ...(scorer ? { scorer } : {}), logger });
    // On a bus between processes the others move the shared store's watermarks too.
    if (bus.listen) context.board.follow((view) => store.watermark(view));
    const loop = scorer ? new ScoringLoop(context, { sinks }) : undefined;
    const updater = new OnlineUpdater(context, { load, ...(loop ? { scoring: loop } : {}) });
    loop?.start();
    bus.subscribe(updater.listener);
    bus.subscribe((message) => {
      // Source lag: commit of the newest change received → its receipt.
      let newest = 0n;
      for (const b of message.batches) for (const r of b.rows) if (r.commitTime > newest) newest = r.commitTime;
      if (newest > 0n)
        context.metrics.sourceLag.set(Math.max(0, message.receivedAt / 1000 - Number(newest) / 1_000_000));
    });
    const http = await buildHttpApp(context, {
      ...(config.serve.token ? { bearerToken: config.serve.token } : {}),
      bodyLimit: config.serve.bodyLimitBytes,
      logger,
    });
    const address = await http.listen({ host: config.serve.host, port: config.serve.port });
    logger.info({ url: address.url }, 'listening; loading the online store (/health is ready once it is)');
    const runtime = new ServeRuntime(
      { context, http, updater, loop, bus, sinks, scorer, store, reads, closeReader: () => reader?.close() },
      log !== undefined,
      address.url,
      container,
      logger,
    );
    const stop = () => void updater.stop();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      await updater.start();
    } finally {
      signal?.removeEventListener('abort', stop);
    }
    if (signal?.aborted) return runtime;
    // A bus between processes replays what its consumer group did not commit: nothing to recover here.
    if (bus.listen) await bus.listen();
    else if (loop && scorer && log) await runtime.recover(log, materializer, sinks, (await log.state()).checkpoint);
    logger.info({ url: address.url }, 'serving');
    return runtime;
  }

  /**
   * Makes the predictions a stop left unmade: the changes of the service's source tables committed
   * after the sinks' watermark (the lowest) and up to the change log's checkpoint, from the change
   * log, through the views' transforms, in commit order. A sink that never wrote starts at the
   * checkpoint: history from before serving began is not scored.
   */
  private async recover(
    log: ChangeLog,
    materializer: Materializer,
    sinks: readonly PredictionSink[],
    checkpoint: Position | null,
  ): Promise<void> {
    if (checkpoint === null || sinks.length === 0) return;
    const marks = await Promise.all(sinks.map((s) => s.watermark()));
    const known = marks.filter((m): m is Position => m !== null);
    const from = known.length === marks.length ? known.reduce((a, b) => (a < b ? a : b)) : null;
    const loop = this.parts.loop!;
    if (from !== null && from < checkpoint) {
      const views = this.parts.context.inputs.map((i) => i.view);
      let changes = 0;
      for await (const page of log.changesAfter(from, [...new Set(views.map((v) => v.source))])) {
        const current = page.filter((c) => c.commitPosition <= checkpoint);
        const { batches } = materializer.materializeChanges(current, views);
        await loop.enqueue({ batches, through: null, receivedAt: Date.now(), writtenAt: Date.now() });
        changes += current.length;
      }
      this.logger.info(
        { from: formatPosition(from), to: formatPosition(checkpoint), changes },
        'scoring the changes a stop left unscored',
      );
    }
    // Every change up to the checkpoint is predicted (or was before serving began).
    await loop.enqueue({ batches: [], through: checkpoint, receivedAt: Date.now(), writtenAt: Date.now() });
  }

  /**
   * Runs the ingest (until `signal`, or caught up with `untilCaughtUp`), feeding the online side; a
   * process that only consumes the bus serves until `signal`.
   */
  async run(options: IngestOptions = {}): Promise<IngestResult> {
    if (!this.ingests) {
      const { signal } = options;
      if (!signal?.aborted) await new Promise((resolve) => signal?.addEventListener('abort', resolve, { once: true }));
      return { snapshotted: false, changesApplied: 0, checkpoint: null };
    }
    const engine = await this.container.getAsync(TOKENS.IngestEngine);
    return engine.run(options);
  }

  /** Everything made so far is served and written (for tests and `--until-caught-up`). */
  async idle(): Promise<void> {
    await this.parts.loop?.idle();
  }

  /** Drains and closes, in reverse start order (the ingest must have stopped). */
  async stop(): Promise<void> {
    const { http, bus, updater, loop, context, sinks, scorer, reads, closeReader } = this.parts;
    await http.close();
    await bus.close();
    await updater.stop();
    await loop?.stop();
    context.close();
    for (const sink of sinks) await sink.close();
    await scorer?.close();
    closeReader();
    await reads?.close();
  }
}

/** Options of {@link ServeRuntime.start}. */
export interface ServeOptions {
  /** Ends the wait for the online store (check it before {@link ServeRuntime.run}). */
  readonly signal?: AbortSignal;
  /**
   * On a bus between processes (Kafka), also read the source and publish to the bus (one process
   * only). Default false: `featureflow ingest` does. The in-process bus always ingests.
   */
  readonly ingest?: boolean;
}
