import type { Logger } from 'pino';
import { FeatureflowError } from '../errors.js';
import type { FeatureRegistry } from '../features/feature-registry.js';
import type { FeatureService } from '../features/feature-service.js';
import type { FeatureView } from '../features/feature-view.js';
import type { Materializer } from '../features/materialize.js';
import type { OnlineStore } from '../interfaces/online-store.js';
import type { ModelInfo, Scorer } from '../interfaces/scorer.js';
import { ServingMetrics, type MetricsOptions } from './metrics.js';
import { PredictionFeed, type FeedOptions } from './prediction-feed.js';
import { ServingHealth } from './serving-health.js';
import { viewId, WatermarkBoard } from './watermark-board.js';

/** One selection of the scored service, resolved against the served views. */
export interface ServiceInput {
  /** The served view (the registry's object). */
  readonly view: FeatureView;
  /** Indexes of the selected features among the view's features (declaration order), in selection order. */
  readonly features: readonly number[];
  /** Qualified names of the selected features, `view.feature`, in selection order. */
  readonly names: readonly string[];
}

/** What {@link ServingContext} is made of. The store and the scorer are open already. */
export interface ServingContextOptions {
  /** The online store, open. */
  readonly store: OnlineStore;
  readonly registry: FeatureRegistry;
  /** The ingest's materializer: the views' transforms (request-time predictions) and the source schemas (key types). */
  readonly materializer: Materializer;
  /** The model, open; without one, features are served and nothing is scored. */
  readonly scorer?: Scorer;
  /** The view versions kept in the online store. Default: every view of the registry. The scored service's views are added. */
  readonly views?: readonly FeatureView[];
  readonly feed?: FeedOptions;
  readonly metrics?: MetricsOptions;
  /** Parent of the serving side's loggers. Default: silent. */
  readonly logger?: Logger;
}

/**
 * What the online updater, the scoring loop and the HTTP app share: the online store, the feature
 * definitions, the model, the live feed, the watermark board, health and metrics. The runtime builds
 * one per serving process, after opening the store, the scorer and the sinks.
 *
 * Start: `loop.start()`, `bus.subscribe(updater.listener)`, `http.listen()`, `updater.start()`
 * (health turns ready once it has loaded the store), then the ingest. Stop (SIGTERM): `http.close()`,
 * stop the ingest, `bus.close()`, `updater.stop()`, `loop.stop()`, `context.close()`, then close
 * the sinks, the scorer and the store.
 *
 * @example
 * await store.open(); await scorer.open();
 * const context = new ServingContext({ store, registry, materializer, scorer, logger });
 * const loop = new ScoringLoop(context, { sinks });
 * const updater = new OnlineUpdater(context, { load, scoring: loop });
 * const http = await buildHttpApp(context, { bearerToken });
 * loop.start();
 * bus.subscribe(updater.listener);
 * await http.listen({ host, port });
 * await updater.start();
 */
export class ServingContext {
  readonly store: OnlineStore;
  readonly registry: FeatureRegistry;
  readonly materializer: Materializer;
  readonly scorer: Scorer | null;
  readonly model: ModelInfo | null;
  /** The scored service's selections, in the service's order (empty without a scorer). */
  readonly inputs: readonly ServiceInput[];
  /** The served view versions. */
  readonly views: readonly FeatureView[];
  readonly feed: PredictionFeed;
  readonly board = new WatermarkBoard();
  readonly health = new ServingHealth();
  readonly metrics: ServingMetrics;
  readonly logger: Logger | undefined;
  /** Rows waiting in the scoring loop, once one is attached (for metrics). */
  scoringQueued: () => number = () => 0;
  private readonly byId: ReadonlyMap<string, FeatureView>;

  constructor(options: ServingContextOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.materializer = options.materializer;
    this.scorer = options.scorer ?? null;
    this.model = this.scorer?.model ?? null;
    this.logger = options.logger?.child({ component: 'serving' });
    const views = new Map<string, FeatureView>();
    for (const view of options.views ?? options.registry.views) views.set(viewId(view), view);
    const service = this.model?.service;
    for (const s of service?.selections ?? []) if (!views.has(viewId(s.view))) views.set(viewId(s.view), s.view);
    this.views = Object.freeze([...views.values()]);
    this.byId = views;
    this.inputs = service ? Object.freeze(resolveInputs(service, views)) : [];
    this.feed = new PredictionFeed(options.feed);
    this.metrics = new ServingMetrics(
      {
        store: this.store,
        views: this.views,
        scorerQueued: () => this.scorer?.queued ?? 0,
        scoringQueued: () => this.scoringQueued(),
        feedSubscribers: () => this.feed.subscriberCount,
      },
      options.metrics,
    );
  }

  /** The scored service, or null without a model. */
  get service(): FeatureService | null {
    return this.model?.service ?? null;
  }

  /** The served view `name` at `version`, or its highest served version. */
  view(name: string, version?: number): FeatureView | undefined {
    if (version !== undefined) return this.byId.get(`${name}@${version}`);
    let best: FeatureView | undefined;
    for (const v of this.views) if (v.name === name && (!best || v.version > best.version)) best = v;
    return best;
  }

  /**
   * Ends the live feed's streams and the read-after-write waits. After the HTTP server and the loops
   * stopped; the store and the scorer are the runtime's to close. Idempotent.
   */
  close(): void {
    this.feed.close();
    this.board.close();
  }

  /** The served view of the same name and version as `view` (a bus may carry equal copies of a definition). */
  served(view: FeatureView): FeatureView | undefined {
    return this.byId.get(viewId(view));
  }
}

/**
 * The service's selections against the served views. Every view of a scored service must be keyed
 * by the same key columns, so that a change of one view names the entity in the others.
 */
function resolveInputs(service: FeatureService, views: ReadonlyMap<string, FeatureView>): ServiceInput[] {
  const first = service.selections[0]!.view;
  const keys = [...first.entity.keys].sort().join(',');
  return service.selections.map((s) => {
    const view = views.get(viewId(s.view))!;
    if ([...view.entity.keys].sort().join(',') !== keys) {
      throw new FeatureflowError(
        'FF_FEATURE_DEFINITION',
        `feature service ${service.name} joins view ${view.name} (keyed by ${view.entity.keys.join(', ')}) with view ${first.name} ` +
          `(keyed by ${first.entity.keys.join(', ')}); a scored service's views must share their entity's key columns`,
      );
    }
    const names = Object.keys(view.features);
    return {
      view,
      features: s.features.map((f) => names.indexOf(f)),
      names: s.features.map((f) => `${view.name}.${f}`),
    };
  });
}
