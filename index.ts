/**
 * featureflow's public API and composition root: the production container wires the PostgreSQL
 * source and the DuckDB store into the framework.
 */
import type { Container } from 'inversify';
import { buildContainer } from './framework/container';
import { runCli } from './framework/cli/main';
import { resolveConfig, type FeatureflowConfig, type ResolvedConfig } from './framework/config';
import { postgresSourceModule } from './sources/postgres';
import { duckdbStoreModule } from './stores/duckdb';

export { defineConfig, resolveConfig } from './framework/config';
export type { FeatureflowConfig, ResolvedConfig } from './framework/config';
export { closeContainer } from './framework/container';
export { FeatureflowError, ErrorCodes } from './framework/errors';
export { TOKENS } from './framework/tokens';
export * from './framework/types';
export type * from './framework/interfaces';

/** Builds the production container from a config (validated and frozen here). */
export async function createContainer(config: FeatureflowConfig | ResolvedConfig): Promise<Container> {
  const resolved = Object.isFrozen(config) ? (config as ResolvedConfig) : resolveConfig(config as FeatureflowConfig);
  return buildContainer(resolved, [postgresSourceModule(), duckdbStoreModule()]);
}

/** Runs the `featureflow` command line with the production container; resolves to the exit code. */
export function cli(argv: string[]): Promise<number> {
  return runCli(argv, { createContainer });
}
