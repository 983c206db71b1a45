import type { ServiceIdentifier } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.js';
import type {
  ChangeBus,
  ChangeLog,
  ChangePublisher,
  OfflineStore,
  OnlineStore,
  PredictionSink,
  Scorer,
  Source,
} from './interfaces/index.js';
import type { FeatureRegistry } from './features/feature-registry.js';
import type { Materializer } from './features/materialize.js';
import type { IngestEngine } from './ingest/ingest-engine.js';

/** Typed DI tokens. Import tokens, not classes, to avoid import cycles. */
export const TOKENS = {
  Config: Symbol.for('featureflow/Config') as ServiceIdentifier<ResolvedConfig>,
  Logger: Symbol.for('featureflow/Logger') as ServiceIdentifier<Logger>,
  Source: Symbol.for('featureflow/Source') as ServiceIdentifier<Source>,
  ChangeLog: Symbol.for('featureflow/ChangeLog') as ServiceIdentifier<ChangeLog>,
  IngestEngine: Symbol.for('featureflow/IngestEngine') as ServiceIdentifier<IngestEngine>,
  /** The project's feature definitions, checked once. */
  FeatureRegistry: Symbol.for('featureflow/FeatureRegistry') as ServiceIdentifier<FeatureRegistry>,
  /** Changes → feature rows, shared by every stage that needs them. */
  Materializer: Symbol.for('featureflow/Materializer') as ServiceIdentifier<Materializer>,
  /** Reads of the feature history (latest, as of, training sets, exports) in this process. */
  OfflineStore: Symbol.for('featureflow/OfflineStore') as ServiceIdentifier<OfflineStore>,
  /** The latest feature values per entity, for serving. */
  OnlineStore: Symbol.for('featureflow/OnlineStore') as ServiceIdentifier<OnlineStore>,
  /** The model scoring the configured feature service. */
  Scorer: Symbol.for('featureflow/Scorer') as ServiceIdentifier<Scorer>,
  /** Where predictions go: every binding of it (multi-injection). */
  PredictionSink: Symbol.for('featureflow/PredictionSink') as ServiceIdentifier<PredictionSink>,
  /** Feature rows from the ingest to the online side. */
  ChangeBus: Symbol.for('featureflow/ChangeBus') as ServiceIdentifier<ChangeBus>,
  /** Sends the change log's committed changes elsewhere (the config's `publish`). */
  ChangePublisher: Symbol.for('featureflow/ChangePublisher') as ServiceIdentifier<ChangePublisher>,
} as const;
