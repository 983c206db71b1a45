import type { ServiceIdentifier } from 'inversify';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.js';
import type { ChangeLog, Source } from './interfaces/index.js';
import type { IngestEngine } from './ingest-engine.js';

/** Typed DI tokens. Import tokens, not classes, to avoid import cycles. */
export const TOKENS = {
  Config: Symbol.for('featureflow/Config') as ServiceIdentifier<ResolvedConfig>,
  Logger: Symbol.for('featureflow/Logger') as ServiceIdentifier<Logger>,
  Source: Symbol.for('featureflow/Source') as ServiceIdentifier<Source>,
  ChangeLog: Symbol.for('featureflow/ChangeLog') as ServiceIdentifier<ChangeLog>,
  IngestEngine: Symbol.for('featureflow/IngestEngine') as ServiceIdentifier<IngestEngine>,
} as const;
