/** The DuckDB offline feature store: history tables kept by ingest, and reads / exports of them. */
export { FeatureTables, type FeatureTablesOptions } from './feature-tables';
export { featureTablesModule, registerFeatureTables } from './feature-tables-module';
export { FeatureStore, openFeatureStore } from './feature-store';
export { featureStatus, type ViewRecord } from './feature-catalog';
export { POINT_IN_TIME_RULE } from './feature-query';
export { queryArrow } from './duckdb-arrow';
