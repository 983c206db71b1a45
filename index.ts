/**
 * featureflow's public API and composition root: the production container wires the PostgreSQL
 * source and the DuckDB store into the framework.
 */
import type { Container } from 'inversify';
import { buildContainer } from './framework/container.js';
import { runCli } from './framework/cli/main.js';
import { registerExportCommand } from './framework/cli/export-command.js';
import { resolveConfig, type FeatureflowConfig, type ResolvedConfig } from './framework/config.js';
import { postgresSourceModule } from './sources/postgres/index.js';
import { duckdbStoreModule, featureTablesModule, inspectStore, openFeatureStore, type DuckDBChangeLog } from './stores/duckdb/index.js';
import { featureStatus } from './stores/duckdb/feature-catalog.js';
import { TOKENS } from './framework/tokens.js';

export { defineConfig, resolveConfig } from './framework/config.js';
export type { FeatureflowConfig, ResolvedConfig } from './framework/config.js';
export { closeContainer } from './framework/container.js';
export { FeatureflowError, ErrorCodes } from './framework/errors.js';
export { TOKENS } from './framework/tokens.js';
export * from './framework/types.js';
export type * from './framework/interfaces/index.js';
export * from './framework/features/index.js';
export { FeatureStore, openFeatureStore } from './stores/duckdb/index.js';
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
