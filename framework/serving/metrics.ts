import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { FeatureView } from '../features/feature-view.js';
import type { OnlineStore } from '../interfaces/online-store.js';

/** What the metrics read when scraped. */
export interface MetricsProbes {
  readonly store: OnlineStore;
  readonly views: readonly FeatureView[];
  /** Examples waiting in the scorer. */
  scorerQueued?(): number;
  /** Feature rows waiting in the scoring loop's queue. */
  scoringQueued?(): number;
  /** Open live-stream connections. */
  feedSubscribers?(): number;
}

/** Options of {@link ServingMetrics}. */
export interface MetricsOptions {
  /** Also collect Node's process metrics (`process_*`, `nodejs_*`). Default true. */
  readonly defaultMetrics?: boolean;
}

/** Latency buckets in seconds: sub-millisecond steps for the online path, up to 10 s for snapshots and outages. */
const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/**
 * The serving side's Prometheus metrics, in a registry of their own (not prom-client's global one,
 * so two servers in one process, or a user's own metrics, never collide). Gauges that mirror state
 * elsewhere (online-store entities, queues) are read when scraped.
 */
export class ServingMetrics {
  readonly registry = new Registry();
  /** Seconds between a change's commit and its receipt by the ingest; the runtime sets it. */
  readonly sourceLag: Gauge;
  /** Feature rows received from the bus, per view version (`rate()` gives changes/s). */
  readonly changes: Counter<'view' | 'version'>;
  /** Entities with values in the online store, per view version. */
  readonly onlineEntities: Gauge<'view' | 'version'>;
  /** Failed attempts to write the online store (each is retried). */
  readonly onlineWriteErrors: Counter;
  /** Predictions made by the event-driven scoring loop, per model. */
  readonly predictions: Counter<'model'>;
  /** Changes of a scored entity that made no prediction, by reason. */
  readonly predictionsSkipped: Counter<'reason'>;
  /** Seconds per stage of an event-driven prediction: `received`, `features`, `scored`, and `total` (commit → scored). */
  readonly predictionLatency: Histogram<'stage'>;
  readonly scorerQueue: Gauge;
  readonly scoringQueue: Gauge;
  readonly feedSubscribers: Gauge;
  /** HTTP request durations, per method, route pattern and status code. */
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(probes: MetricsProbes, options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.sourceLag = new Gauge({
      name: 'featureflow_source_lag_seconds',
      help: 'Seconds between the commit of the last change received and its receipt',
      registers,
    });
    this.changes = new Counter({
      name: 'featureflow_changes_total',
      help: 'Feature rows received by the online updater',
      labelNames: ['view', 'version'],
      registers,
    });
    const views = probes.views;
    const store = probes.store;
    this.onlineEntities = new Gauge({
      name: 'featureflow_online_entities',
      help: 'Entities with values in the online store',
      labelNames: ['view', 'version'],
      registers,
      async collect() {
        // A store that cannot be reached leaves the last figures; /health says why.
        const counts = await Promise.all(views.map((v) => store.count(v).catch(() => null)));
        views.forEach((v, i) => {
          const n = counts[i];
          if (n !== null && n !== undefined) this.set({ view: v.name, version: String(v.version) }, n);
        });
      },
    });
    this.onlineWriteErrors = new Counter({
      name: 'featureflow_online_write_errors_total',
      help: 'Failed attempts to write the online store (each one retried)',
      registers,
    });
    this.predictions = new Counter({
      name: 'featureflow_predictions_total',
      help: 'Predictions made for committed changes',
      labelNames: ['model'],
      registers,
    });
    this.predictionsSkipped = new Counter({
      name: 'featureflow_predictions_skipped_total',
      help: 'Changes of a scored entity that made no prediction (a feature missing, expired or null, or the model rejected it)',
      labelNames: ['reason'],
      registers,
    });
    this.predictionLatency = new Histogram({
      name: 'featureflow_prediction_latency_seconds',
      help: 'Seconds per stage of an event-driven prediction: received (commit to receipt), features (receipt to online write), scored (write to model output), total',
      labelNames: ['stage'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.scorerQueue = new Gauge({
      name: 'featureflow_scorer_queue',
      help: 'Examples waiting in the scorer',
      registers,
      collect() {
        this.set(probes.scorerQueued?.() ?? 0);
      },
    });
    this.scoringQueue = new Gauge({
      name: 'featureflow_scoring_queue_rows',
      help: 'Feature rows waiting in the scoring loop',
      registers,
      collect() {
        this.set(probes.scoringQueued?.() ?? 0);
      },
    });
    this.feedSubscribers = new Gauge({
      name: 'featureflow_prediction_stream_subscribers',
      help: 'Open connections to the live prediction stream',
      registers,
      collect() {
        this.set(probes.feedSubscribers?.() ?? 0);
      },
    });
    this.httpDuration = new Histogram({
      name: 'featureflow_http_request_duration_seconds',
      help: 'HTTP request durations',
      labelNames: ['method', 'route', 'status_code'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
