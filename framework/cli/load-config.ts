import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
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
    config = await importConfig(path);
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

/**
 * Imports the config file as an ES module through the process's TypeScript loader, so it shares the
 * already loaded featureflow modules. A `.ts` file in a package without `"type": "module"` would load
 * as CommonJS, so a `.mts` copy beside it (relative imports keep working) is imported instead.
 */
async function importConfig(path: string): Promise<FeatureflowConfig | undefined> {
  const copy = join(dirname(path), `.${basename(path).replace(/\.[cm]?ts$/, '')}.${process.pid}.mts`);
  copyFileSync(path, copy);
  try {
    const mod = (await import(pathToFileURL(copy).href)) as { default?: FeatureflowConfig };
    return mod.default;
  } finally {
    rmSync(copy, { force: true });
  }
}
