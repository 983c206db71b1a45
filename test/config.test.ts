import { afterEach, describe, expect, test, vi } from 'vitest';
import { resolveConfig, type FeatureflowConfig } from '../framework/config.js';
import { FeatureflowError } from '../framework/errors.js';
import { DEFAULTS } from '../index.js';
import { postgres, type PostgresAdapter } from '../sources/postgres/index.js';
import { duckdb, type DuckDBAdapter } from '../stores/duckdb/index.js';
import { kafkaBus } from '../stores/kafka/index.js';

/** The FeatureflowError `make` throws. */
function errorOf(make: () => unknown): FeatureflowError {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(FeatureflowError);
    return error as FeatureflowError;
  }
  throw new Error('expected an error');
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('configuration', () => {
  test('defaults fill in, tables are qualified, DATABASE_URL and FEATUREFLOW_DUCKDB override, the result is frozen', () => {
    vi.stubEnv('DATABASE_URL', 'postgres://h/db');
    vi.stubEnv('FEATUREFLOW_DUCKDB', 'x.duckdb');
    const config = resolveConfig({ source: postgres({ tables: ['orders', 'sales.items', 'orders'] }) }, DEFAULTS, {});
    expect((config.source as PostgresAdapter).config).toEqual({
      connectionString: 'postgres://h/db',
      tables: ['public.orders', 'sales.items'],
      slot: 'featureflow',
      publication: 'featureflow',
    });
    expect((config.store as DuckDBAdapter).config).toEqual({
      path: 'x.duckdb',
      memoryLimit: '64MB',
      compression: 'fast',
      openTimeoutSeconds: 30,
    });
    expect(config.ingest).toEqual({
      batchSize: 10_000,
      snapshotBatchSize: 8_192,
      heartbeatSeconds: 5,
      maxBackoffSeconds: 30,
      // Unset: the engine decides (250 ms where the process serves before the commit, else 0).
      commitIntervalMs: undefined,
    });
    expect(Object.isFrozen((config.source as PostgresAdapter).config.tables)).toBe(true);
    // An explicit value wins over the environment.
    vi.stubEnv('DATABASE_URL', 'postgres://env/db');
    expect(postgres({ tables: ['t'], connectionString: 'postgres://explicit/db' }).config.connectionString).toBe(
      'postgres://explicit/db',
    );
  });

  test('every problem is listed at once with its fix, under FF_CONFIG_INVALID', () => {
    // Each adapter validates its own settings when made; the config checks the rest.
    const source = errorOf(() => postgres({ tables: [], slot: 'Bad-Slot' }));
    expect(source.code).toBe('FF_CONFIG_INVALID');
    expect(source.message).toMatch(/postgres\(\{ … \}\) source settings/);
    expect(source.message).toMatch(/tables must list at least one table/);
    expect(source.message).toMatch(/slot "Bad-Slot" must be lower-case/);
    const store = errorOf(() => duckdb({ memoryLimit: 'lots', compression: 'tiny' as never }));
    expect(store.code).toBe('FF_CONFIG_INVALID');
    expect(store.message).toMatch(/duckdb\(\{ … \}\) store settings/);
    expect(store.message).toMatch(/memoryLimit "lots" must be a size/);
    expect(store.message).toMatch(/compression must be "fast" or "small", got "tiny"/);
    const rest = errorOf(() =>
      resolveConfig(
        {
          source: postgres({ tables: ['t'] }),
          ingest: { batchSize: 0, heartbeatSeconds: -1, commitIntervalMs: -5 },
        },
        DEFAULTS,
        {},
      ),
    );
    expect(rest.code).toBe('FF_CONFIG_INVALID');
    expect(rest.message).toMatch(/ingest\.batchSize must be a positive number/);
    expect(rest.message).toMatch(/ingest\.heartbeatSeconds must be a positive number/);
    expect(rest.message).toMatch(/ingest\.commitIntervalMs must be a number ≥ 0, got -5/);
    const bus = kafkaBus({ brokers: ['127.0.0.1:9092'] });
    expect(
      resolveConfig({ source: postgres({ tables: ['t'] }), bus, ingest: { commitIntervalMs: 20 } }, DEFAULTS, {}).ingest
        .commitIntervalMs,
    ).toBe(20);
    // 0 is allowed there: commit as soon as the previous commit ends.
    expect(
      resolveConfig({ source: postgres({ tables: ['t'] }), ingest: { commitIntervalMs: 0 } }, DEFAULTS, {}).ingest
        .commitIntervalMs,
    ).toBe(0);
  });

  test('the earlier store.snapshotCompression is refused with its new name', () => {
    expect(() => duckdb({ snapshotCompression: 'small' } as never)).toThrow(
      /snapshotCompression is now compression .*rename it/,
    );
  });

  test('the earlier shape (source: { tables }, store: { path }) is refused with the shape to write instead', () => {
    const error = errorOf(() =>
      resolveConfig(
        { source: { tables: ['public.orders'], slot: 's' }, store: { path: 'x.duckdb' } } as never as FeatureflowConfig,
        DEFAULTS,
        {},
      ),
    );
    expect(error.code).toBe('FF_CONFIG_INVALID');
    expect(error.message).toMatch(
      /source is now an adapter: write source: postgres\(\{ tables, slot \}\) \(import \{ postgres \} from 'featureflow'\)/,
    );
    expect(error.message).toMatch(
      /defineConfig\(\{ source: postgres\(\{ tables: \["public\.orders"\] \}\), store: duckdb\(\{ path: /,
    );
    expect(error.message).toMatch(
      /store is now an adapter: write store: duckdb\(\{ path \}\) \(import \{ duckdb \} from 'featureflow'\)/,
    );
  });
});
