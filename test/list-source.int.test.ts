import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  entity,
  featureView,
  float64,
  TOKENS,
} from '../index.js';
import { openDuckDB } from '../stores/duckdb/duckdb-database.js';
import { history, ListSource, listAdapter } from './list-source.js';

// The shape check of the Source interface: a second source, over an in-memory list of changes, with
// no snapshot (its whole history comes through follow), runs through the engine, the DuckDB change
// log and the feature history unchanged.

describe('a second Source (an in-memory list, no snapshot) runs through the engine unchanged', () => {
  test('change log, feature history and checkpoint; a second run resumes after it', async () => {
    const item = entity({ name: 'item', keys: ['sku'] });
    const prices = featureView({
      name: 'prices',
      version: 1,
      entity: item,
      source: 'shop.prices',
      features: { price: float64 },
    });
    const path = join(mkdtempSync(join(tmpdir(), 'featureflow-list-')), 'store.duckdb');
    const changes = history();
    const source = new ListSource(changes.slice(0, 6), 3);
    const config = defineConfig({
      source: listAdapter(source),
      store: duckdb({ path }),
      features: { views: [prices] },
      logLevel: 'silent',
    });

    let container = await createContainer(config);
    let result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    expect(result).toMatchObject({ snapshotted: true, changesApplied: 6, checkpoint: 6n });
    expect(source.confirmed).toBe(6n);
    await closeContainer(container);

    // More changes arrive; the next run resumes after the checkpoint.
    const more = new ListSource(changes, 3);
    container = await createContainer({ ...config, source: listAdapter(more) });
    result = await (await container.getAsync(TOKENS.IngestEngine)).run({ untilCaughtUp: true });
    expect(result).toMatchObject({ snapshotted: false, changesApplied: 3, checkpoint: 9n });
    const latest = await (await container.getAsync(TOKENS.OfflineStore)).latest('prices');
    expect(latest.toArray().map((r) => [String(r.sku), Number(r.price)])).toEqual([
      ['a', 100],
      ['b', 20],
      ['c', 30],
      ['d', 4],
    ]);
    await closeContainer(container);

    const db = await openDuckDB(path, { readOnly: true });
    try {
      const logged = (await db.connection.runAndReadAll('SELECT op, key, lsn FROM change_log ORDER BY seq')).getRows();
      expect(logged.map(([op, key, position]) => [op, key, Number(position)])).toEqual(
        changes.map((c) => [c.op, JSON.stringify(c.key), Number(c.position)]),
      );
      const current = (await db.connection.runAndReadAll(`SELECT key FROM current_rows('shop.prices') ORDER BY key`))
        .getRows()
        .map((r) => r[0]);
      expect(current).toEqual(['{"sku":"a"}', '{"sku":"b"}', '{"sku":"c"}', '{"sku":"d"}']);
    } finally {
      db.close();
    }
  });
});
