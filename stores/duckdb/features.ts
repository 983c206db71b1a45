/** The DuckDB offline feature store: history tables kept by ingest, and reads / exports of them. */
export { FeatureTables, type FeatureTablesOptions } from './feature-tables.js';
export { featureTablesModule, registerFeatureTables } from './feature-tables-module.js';
export { FeatureStore, openFeatureStore } from './feature-store.js';
export { featureStatus, type ViewRecord } from './feature-catalog.js';
export { POINT_IN_TIME_RULE } from './feature-query.js';
export { queryArrow } from './duckdb-arrow.js';
