import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FeatureflowError } from '../errors.js';
import {
  resolveConfig,
  type ConfigDefaults,
  type FeatureflowConfig,
  type ResolvedConfig,
  type SourceAdapter,
} from '../config.js';

/** Options every command shares. */
export interface ConfigOptions {
  /** Path of the config file. Default `featureflow.config.ts` in the working directory. */
  config?: string;
  /** Comma-separated tables, overriding the source's tables. */
  tables?: string;
}

/** What loading a config needs from the composition root. */
export interface ConfigSupport {
  readonly defaults: ConfigDefaults;
  /** The source capturing `tables`, when there is no config file (`--tables` alone). */
  readonly sourceFor: (tables: readonly string[]) => SourceAdapter;
}

/**
 * Loads `featureflow.config.ts` (its default export, written with `defineConfig`), applies command-line
 * overrides, validates and freezes it. Without a config file, `--tables` alone is enough.
 */
export async function loadConfig(options: ConfigOptions, support: ConfigSupport): Promise<ResolvedConfig> {
  const path = resolve(options.config ?? 'featureflow.config.ts');
  let config: FeatureflowConfig | undefined;
  if (existsSync(path)) {
    config = await importConfig(path);
    if (!config || typeof config !== 'object') {
      throw new FeatureflowError(
        'FF_CONFIG_INVALID',
        `${path} has no default export; write \`export default defineConfig({ … })\``,
      );
    }
  } else if (options.config) {
    throw new FeatureflowError('FF_CONFIG_INVALID', `config file ${path} does not exist; fix the --config path`);
  } else if (!options.tables) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `no featureflow.config.ts in ${resolve('.')}; create one (see the README's quick start) or pass --tables schema.table[,…]`,
    );
  }
  const tables = options.tables
    ? options.tables
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
    : undefined;
  const resolved = resolveConfig(
    config ?? ({ source: support.sourceFor(tables ?? []) } as FeatureflowConfig),
    support.defaults,
  );
  return tables && config ? Object.freeze({ ...resolved, source: resolved.source.withTables(tables) }) : resolved;
}

/**
 * The query that marks the config file's URL for {@link ESM_HOOK}. A `.ts` file in a package without
 * `"type": "module"` would otherwise load as CommonJS, and its imports of featureflow (an ES module)
 * would fail.
 */
const AS_ESM = 'featureflow-config=esm';
/** A module loader hook (node:module `register`) that loads the marked config file as an ES module. */
const ESM_HOOK = `export async function load(url, context, next) {
  if (!url.includes('${AS_ESM}')) return next(url, context);
  return { ...(await next(url, { ...context, format: 'module' })), format: 'module' };
}`;
let tsLoader: Promise<void> | undefined;

/** Registers tsx's loader (TypeScript files only) and the hook above, once per process. */
function registerTypeScript(): Promise<void> {
  tsLoader ??= (async () => {
    const { register: registerTsx } = await import('tsx/esm/api');
    registerTsx();
    register(`data:text/javascript,${encodeURIComponent(ESM_HOOK)}`);
  })();
  return tsLoader;
}

/**
 * Imports the config file where it is, writing nothing beside it (its directory may be read-only):
 * a TypeScript file through tsx's loader, as an ES module whatever the package type, in this
 * process's module graph (so it shares the featureflow modules already loaded); anything else as it
 * is. A syntax error names the user's file, line and column.
 */
async function importConfig(path: string): Promise<FeatureflowConfig | undefined> {
  let mod: { default?: unknown };
  try {
    if (/\.[cm]?ts$/.test(path)) {
      await registerTypeScript();
      mod = (await import(`${pathToFileURL(path).href}?${AS_ESM}`)) as { default?: unknown };
    } else {
      mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
    }
  } catch (error) {
    if (error instanceof FeatureflowError) throw error;
    throw configError(path, error);
  }
  return mod.default as FeatureflowConfig | undefined;
}

/** FF_CONFIG_INVALID for a config file that failed to load: where (file, line, column) and what. */
function configError(path: string, error: unknown): FeatureflowError {
  const message = String((error as Error)?.message ?? error);
  // esbuild (through tsx): "Transform failed with 1 error:\n<file>:<line>:<column>: ERROR: <text>".
  const transform = [...message.matchAll(/^(.+?):(\d+):(\d+): ERROR: (.+)$/gm)].filter((m) => m[1] === path);
  if (transform.length > 0) {
    const lines = transform.map((m) => `${path}:${m[2]}:${m[3]}: ${m[4]}`);
    return new FeatureflowError(
      'FF_CONFIG_INVALID',
      `the config file has a syntax error; fix it:\n  ${lines.join('\n  ')}`,
      { cause: error },
    );
  }
  // A runtime error while the config ran: the first stack frame in the user's file says where.
  const url = pathToFileURL(path).href;
  const frame = String((error as Error)?.stack ?? '')
    .split('\n')
    .find((l) => l.includes(path) || l.includes(url));
  const at = frame
    ? ` (${frame
        .trim()
        .replace(/^at\s+/, '')
        .replace(`${url}?${AS_ESM}`, path)
        .replace(url, path)})`
    : '';
  return new FeatureflowError(
    'FF_CONFIG_INVALID',
    `loading the config file ${path} failed: ${message}${at}; fix the config`,
    { cause: error },
  );
}
