import { describe, expect, test } from 'vitest';
import { resolveConfig } from '../framework/config.js';
import { FeatureflowError } from '../framework/errors.js';

describe('configuration', () => {
  test('defaults fill in, tables are qualified, DATABASE_URL and FEATUREFLOW_DUCKDB override, the result is frozen', () => {
    const config = resolveConfig({ source: { tables: ['orders', 'sales.items', 'orders'] } }, { DATABASE_URL: 'postgres://h/db', FEATUREFLOW_DUCKDB: 'x.duckdb' });
    expect(config.source).toEqual({ connectionString: 'postgres://h/db', tables: ['public.orders', 'sales.items'], slot: 'featureflow', publication: 'featureflow' });
    expect(config.store).toEqual({ path: 'x.duckdb', memoryLimit: '64MB', compression: 'fast', openTimeoutSeconds: 30 });
    expect(config.ingest).toEqual({ batchSize: 10_000, snapshotBatchSize: 8_192, heartbeatSeconds: 5, maxBackoffSeconds: 30 });
    expect(Object.isFrozen(config.source.tables)).toBe(true);
    // An explicit value wins over the environment.
    expect(resolveConfig({ source: { tables: ['t'], connectionString: 'postgres://explicit/db' } }, { DATABASE_URL: 'postgres://env/db' }).source.connectionString).toBe(
      'postgres://explicit/db',
    );
  });

  test('every problem is listed at once with its fix, under FF_CONFIG_INVALID', () => {
    let error: unknown;
    try {
      resolveConfig({ source: { tables: [], slot: 'Bad-Slot' }, store: { memoryLimit: 'lots', compression: 'tiny' as never }, ingest: { batchSize: 0 } }, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FeatureflowError);
    expect((error as FeatureflowError).code).toBe('FF_CONFIG_INVALID');
    const message = (error as Error).message;
    expect(message).toMatch(/source\.tables must list at least one table/);
    expect(message).toMatch(/source\.slot "Bad-Slot" must be lower-case/);
    expect(message).toMatch(/store\.memoryLimit "lots" must be a size/);
    expect(message).toMatch(/store\.compression must be "fast" or "small", got "tiny"/);
    expect(message).toMatch(/ingest\.batchSize must be a positive number/);
  });

  test('the earlier store.snapshotCompression is refused with its new name', () => {
    expect(() => resolveConfig({ source: { tables: ['t'] }, store: { snapshotCompression: 'small' } as never }, {})).toThrow(
      /store\.snapshotCompression is now store\.compression .*rename it/,
    );
  });
});
