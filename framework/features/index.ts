/** The feature-definition DSL: entities, feature views, feature services and feature types. */
export { entity, type Entity } from './entity';
export { featureView, historyTableName, type FeatureView, type FeatureViewDefinition, type FeatureSelection, type Transform, type TransformContext } from './feature-view';
export { featureService, type FeatureService } from './feature-service';
export { FeatureRegistry, defineFeatures, type FeatureDefinitions } from './feature-registry';
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
} from './feature-types';
export { compileView, entityKey, FeatureRowError, type CompiledView } from './compiled-view';
export { describeView, fingerprint, describeChanges, type ViewDescriptor } from './fingerprint';
export { toMicros, formatMicros, durationMicros } from './instant';
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
} from './offline-store';
