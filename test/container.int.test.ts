import { describe, expect, test } from 'vitest';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { testConfig, randomName } from './helpers.js';
import { existsSync } from 'node:fs';

describe('production container', () => {
  test('resolves every root service, and closing it closes the store and connections', async () => {
    const config = testConfig([randomName('unused')]);
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const source = await container.getAsync(TOKENS.Source);
    const log = await container.getAsync(TOKENS.ChangeLog);
    expect(typeof engine.run).toBe('function');
    // The source reaches the real server; the store opens the real DuckDB file.
    const status = await source.status(null);
    expect(status.holds[`slot ${config.source.config.slot}`]).toBe('missing');
    await log.open();
    expect(await log.state()).toEqual({
      checkpoint: null,
      snapshotDone: false,
      tables: null,
      sourceRecord: null,
      lastCommitTime: null,
      tableStarts: new Map(),
      rereads: [],
    });
    expect(existsSync(config.store.config.path)).toBe(true);
    await closeContainer(container);
    // After close, the DuckDB file can be opened by another instance (the lock is released).
    const again = await createContainer(config);
    const log2 = await again.getAsync(TOKENS.ChangeLog);
    await log2.open();
    await closeContainer(again);
  });
});
