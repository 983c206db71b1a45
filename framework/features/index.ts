/** The feature-definition DSL: entities, feature views, feature services and feature types. */
export { entity, type Entity } from './entity.js';
export {
  featureView,
  historyTableName,
  type FeatureView,
  type FeatureViewDefinition,
  type FeatureSelection,
  type Transform,
  type TransformContext,
} from './feature-view.js';
export { featureService, type FeatureService } from './feature-service.js';
export { FeatureRegistry, defineFeatures, type FeatureDefinitions } from './feature-registry.js';
export {
  bool,
  float32,
  float64,
  int32,
  int64,
  tensor,
  text,
  timestamp,
  typeName,
  type FeatureSchema,
  type FeatureType,
  type FeatureValues,
  type ScalarType,
  type TensorType,
} from './feature-types.js';
export { compileView, entityKey, FeatureRowError, type CompiledView } from './compiled-view.js';
export { describeView, fingerprint, describeChanges, type ViewDescriptor } from './fingerprint.js';
export { toMicros, formatMicros, durationMicros } from './instant.js';
export type {
  ExportManifest,
  ExportOptions,
  ExportProgress,
  ExportRequest,
  ExportResult,
  FeatureViewStatus,
  OfflineStore,
  SpineInput,
  TrainingSetOptions,
  ViewRef,
} from '../interfaces/offline-store.js';
