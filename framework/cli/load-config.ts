import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { FeatureflowError } from '../errors';
import { resolveConfig, type FeatureflowConfig, type ResolvedConfig } from '../config';

/** Options every command shares. */
export interface ConfigOptions {
  /** Path of the config file. Default `featureflow.config.ts` in the working directory. */
  config?: string;
  /** Comma-separated tables, overriding `source.tables`. */
  tables?: string;
}

/**
 * Loads `featureflow.config.ts` (its default export, written with `defineConfig`), applies command-line
 * overrides, validates and freezes it. Without a config file, `--tables` alone is enough.
 */
export async function loadConfig(options: ConfigOptions): Promise<ResolvedConfig> {
  const path = resolve(options.config ?? 'featureflow.config.ts');
  let config: FeatureflowConfig | undefined;
  if (existsSync(path)) {
    // tsImport loads the TypeScript file as ESM whatever the surrounding package.json says.
    const mod = (await tsImport(pathToFileURL(path).href, import.meta.url)) as { default?: FeatureflowConfig & { default?: FeatureflowConfig } };
    config = mod.default?.default ?? mod.default;
    if (!config || typeof config !== 'object') {
      throw new FeatureflowError('FF_CONFIG_INVALID', `${path} has no default export; write \`export default defineConfig({ … })\``);
    }
  } else if (options.config) {
    throw new FeatureflowError('FF_CONFIG_INVALID', `config file ${path} does not exist; fix the --config path`);
  } else if (!options.tables) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `no featureflow.config.ts in ${resolve('.')}; create one (see the README's quick start) or pass --tables schema.table[,…]`,
    );
  }
  const tables = options.tables ? options.tables.split(',').map((t) => t.trim()).filter(Boolean) : undefined;
  return resolveConfig({
    ...config,
    source: { ...config?.source, tables: tables ?? config?.source.tables ?? [] },
  } as FeatureflowConfig);
}
