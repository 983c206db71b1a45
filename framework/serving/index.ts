/** The online half: bus, online updater, scoring loop, live feed, request-time predictions and the HTTP API. */
export { InProcessBus } from './in-process-bus.js';
export {
  OnlineUpdater,
  type OnlineLoader,
  type OnlineUpdaterOptions,
  type WrittenMessage,
  type WrittenMessageQueue,
} from './online-updater.js';
export { ScoringLoop, type ScoringLoopOptions } from './scoring-loop.js';
export {
  PredictionFeed,
  type FeedEvent,
  type FeedFilter,
  type FeedOptions,
  type FeedSubscriber,
  type FeedSubscription,
} from './prediction-feed.js';
export { RequestPredictor, type RawRows, type RequestPrediction } from './predict.js';
export { ServingMetrics, type MetricsOptions, type MetricsProbes } from './metrics.js';
export { ServingContext, type ServiceInput, type ServingContextOptions } from './serving-context.js';
export { ServingHealth, type HealthReport } from './serving-health.js';
export { WatermarkBoard, viewId } from './watermark-board.js';
export { ServingError } from './serving-errors.js';
export { buildHttpApp, type HttpAppOptions, type HttpServer, type ListenOptions } from './http-app.js';
