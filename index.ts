/**
 * featureflow's public API and composition root: the production container wires the PostgreSQL
 * source and the DuckDB store into the framework.
 */
import type { Container } from 'inversify';
import { buildContainer } from './framework/container';
import { runCli } from './framework/cli/main';
import { registerExportCommand } from './framework/cli/export-command';
import { resolveConfig, type FeatureflowConfig, type ResolvedConfig } from './framework/config';
import { postgresSourceModule } from './sources/postgres';
import { duckdbStoreModule, featureTablesModule, inspectStore, openFeatureStore, type DuckDBChangeLog } from './stores/duckdb';
import { featureStatus } from './stores/duckdb/feature-catalog';
import { TOKENS } from './framework/tokens';

export { defineConfig, resolveConfig } from './framework/config';
export type { FeatureflowConfig, ResolvedConfig } from './framework/config';
export { closeContainer } from './framework/container';
export { FeatureflowError, ErrorCodes } from './framework/errors';
export { TOKENS } from './framework/tokens';
export * from './framework/types';
export type * from './framework/interfaces';
export * from './framework/features';
export { FeatureStore, openFeatureStore } from './stores/duckdb';
// toTensors lives in 'featureflow/framework/tensors': loading TF.js is slow, so it is imported on demand.

/** Builds the production container from a config (validated and frozen here). */
export async function createContainer(config: FeatureflowConfig | ResolvedConfig): Promise<Container> {
  const resolved = Object.isFrozen(config) ? (config as ResolvedConfig) : resolveConfig(config as FeatureflowConfig);
  return buildContainer(resolved, [postgresSourceModule(), duckdbStoreModule(), featureTablesModule()]);
}

/** Runs the `featureflow` command line with the production container; resolves to the exit code. */
export function cli(argv: string[]): Promise<number> {
  return runCli(argv, {
    createContainer,
    inspectStore: (config) => inspectStore(config.store.path),
    liveViews: async (container) => featureStatus(((await container.getAsync(TOKENS.ChangeLog)) as DuckDBChangeLog).connection),
    extend: (program, deps) =>
      registerExportCommand(program, {
        loadConfig: deps.loadConfig,
        openOfflineStore: (config) => openFeatureStore(config.store.path, { definitions: config.features }),
      }),
  });
}
