import { copyFileSync, rmSync } from 'node:fs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FeatureflowError } from '../framework/errors.js';
import { closeContainer, createContainer, TOKENS } from '../index.js';
import { pgClient, randomName, testConfig, withTables, type TestConfig } from './helpers.js';
import { compareWithPostgres, ingestUntilCaughtUp } from './ingest-harness.js';

// Each of these used to exit 0 and lose committed changes for good: a change log must never resume
// past a gap, nor take over, alter or drop a slot or publication another change log uses.

let client: pg.Client;
beforeAll(async () => {
  client = await pgClient();
});
afterAll(async () => {
  await client?.end();
});

async function createTable(rows: number): Promise<string> {
  const table = randomName('own');
  await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
  await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`);
  return table;
}

async function insert(table: string, from: number, to: number): Promise<void> {
  await client.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(${from}, ${to}) g`);
}

/** The run's rejection, a FeatureflowError. */
async function ingestError(config: TestConfig): Promise<FeatureflowError> {
  const error = await ingestUntilCaughtUp(config).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FeatureflowError);
  return error as FeatureflowError;
}

async function slotConfirmed(slot: string): Promise<string | null> {
  const { rows } = await client.query(
    'SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return rows[0]?.l ?? null;
}

async function publicationTables(publication: string): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT n.nspname || '.' || c.relname AS t FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
       JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1 ORDER BY 1`,
    [publication],
  );
  return rows.map((r) => r.t as string);
}

async function teardown(config: TestConfig) {
  const container = await createContainer(config);
  try {
    const log = await container.getAsync(TOKENS.ChangeLog);
    await log.open();
    const record = (await log.state()).sourceRecord;
    await log.close();
    return await (await container.getAsync(TOKENS.Source)).teardown(record);
  } finally {
    await closeContainer(container);
  }
}

describe('a change log never silently loses changes', () => {
  test('a change log restored from an older copy is refused (FF_PG_SLOT_AHEAD, both positions named); a new snapshot recovers it', async () => {
    const table = await createTable(100);
    const config = testConfig([table]);
    await ingestUntilCaughtUp(config);
    const copy = `${config.store.config.path}.copy`;
    copyFileSync(config.store.config.path, copy);
    await insert(table, 101, 110);
    await ingestUntilCaughtUp(config);
    // The older copy comes back; the slot has confirmed rows 101–110 already.
    copyFileSync(copy, config.store.config.path);
    rmSync(`${config.store.config.path}.wal`, { force: true });
    await insert(table, 111, 120);
    const error = await ingestError(config);
    expect(error.code).toBe('FF_PG_SLOT_AHEAD');
    expect(error.message).toMatch(new RegExp(`slot ${config.source.config.slot}`));
    expect(error.message).toMatch(/confirmed [0-9A-F]+\/[0-9A-F]+, the log's checkpoint is [0-9A-F]+\/[0-9A-F]+/);
    expect(error.message).toMatch(/teardown --yes.*featureflow ingest|postgres\(\{ slot \}\)/);
    // Nothing was applied from the gap on.
    expect((await compareWithPostgres(client, config, table)).state.size).toBe(100);

    // The way out the message names: drop the log's slot, take a new snapshot into the same file.
    expect(await teardown(config)).toEqual({
      dropped: [`slot ${config.source.config.slot}`, `publication ${config.source.config.publication}`],
      leftAlone: [],
    });
    await ingestUntilCaughtUp(config);
    const { diff, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(120);
  });

  test("a second change log on the same slot name is refused (FF_PG_SLOT_FOREIGN) and leaves the first one's slot alone", async () => {
    const table = await createTable(100);
    const a = testConfig([table]);
    await ingestUntilCaughtUp(a);
    await insert(table, 101, 110);
    const before = await slotConfirmed(a.source.config.slot);

    // B: its own file and publication, A's slot name (e.g. both on the default `featureflow`).
    const b = testConfig([table], { source: { tables: [table], slot: a.source.config.slot, publication: undefined } });
    const error = await ingestError(b);
    expect(error.code).toBe('FF_PG_SLOT_FOREIGN');
    expect(error.message).toMatch(
      new RegExp(`replication slot ${a.source.config.slot} .* this change log did not create it`),
    );
    expect(error.message).toMatch(/pg_drop_replication_slot/);
    expect(await slotConfirmed(a.source.config.slot)).toBe(before);
    // B created nothing: its publication (the slot's name by default) would be new; none was made.
    expect(b.source.config.publication).toBe(a.source.config.slot);
    expect(await publicationTables(b.source.config.publication)).toEqual([]);

    await insert(table, 111, 120);
    await ingestUntilCaughtUp(a);
    const { diff, state } = await compareWithPostgres(client, a, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(120);
    // Teardown by B leaves A's slot alone too.
    expect(await teardown(b)).toEqual({ dropped: [], leftAlone: [`slot ${a.source.config.slot}`] });
    expect(await slotConfirmed(a.source.config.slot)).not.toBeNull();
  });

  test('two configurations sharing a publication: the second is refused (FF_PG_PUBLICATION_FOREIGN) and the first keeps receiving', async () => {
    const tableA = await createTable(10);
    const tableB = await createTable(10);
    const a = testConfig([tableA]);
    await ingestUntilCaughtUp(a);
    const b = testConfig([tableB], { source: { tables: [tableB], publication: a.source.config.publication } });
    const error = await ingestError(b);
    expect(error.code).toBe('FF_PG_PUBLICATION_FOREIGN');
    expect(error.message).toMatch(
      new RegExp(`publication ${a.source.config.publication} .* publishes public\\.${tableA}`),
    );
    expect(await publicationTables(a.source.config.publication)).toEqual([`public.${tableA}`]);
    // B made no slot either.
    expect(await slotConfirmed(b.source.config.slot)).toBeNull();

    await insert(tableA, 11, 20);
    await ingestUntilCaughtUp(a);
    expect((await compareWithPostgres(client, a, tableA)).state.size).toBe(20);
  });

  test('by default each slot has its own publication; a table added to the configuration is added to it', async () => {
    const table1 = await createTable(5);
    const table2 = await createTable(5);
    const slot1 = randomName('slot');
    const slot2 = randomName('slot');
    const one = testConfig([table1], { source: { tables: [table1], slot: slot1, publication: undefined } });
    const two = testConfig([table2], { source: { tables: [table2], slot: slot2, publication: undefined } });
    expect([one.source.config.publication, two.source.config.publication]).toEqual([slot1, slot2]);
    await ingestUntilCaughtUp(one);
    await ingestUntilCaughtUp(two);
    expect(await publicationTables(slot1)).toEqual([`public.${table1}`]);
    expect(await publicationTables(slot2)).toEqual([`public.${table2}`]);

    const table3 = await createTable(5);
    const grown = withTables(one, [`public.${table1}`, `public.${table3}`]);
    await ingestUntilCaughtUp(grown);
    expect(await publicationTables(slot1)).toEqual([`public.${table1}`, `public.${table3}`].sort());
    expect((await compareWithPostgres(client, grown, table3)).state.size).toBe(5);
  });

  test('a publication the user created is used as it is, never altered, and teardown leaves it', async () => {
    const table = await createTable(5);
    const other = await createTable(1);
    const publication = randomName('userpub');
    await client.query(`CREATE PUBLICATION ${publication} FOR TABLE ${table} WITH (publish_via_partition_root = true)`);
    const config = testConfig([table], { source: { tables: [table], publication } });
    await ingestUntilCaughtUp(config);
    expect((await compareWithPostgres(client, config, table)).state.size).toBe(5);

    // Adding a table to the configuration: featureflow does not add it to a publication it did not create.
    const grown = withTables(config, [`public.${table}`, `public.${other}`]);
    const error = await ingestError(grown);
    expect(error.code).toBe('FF_PG_PUBLICATION_FOREIGN');
    expect(error.message).toMatch(new RegExp(`ALTER PUBLICATION "${publication}" ADD TABLE "public"."${other}"`));
    expect(await publicationTables(publication)).toEqual([`public.${table}`]);

    expect(await teardown(config)).toEqual({
      dropped: [`slot ${config.source.config.slot}`],
      leftAlone: [`publication ${publication}`],
    });
    expect(await publicationTables(publication)).toEqual([`public.${table}`]);
  });

  test('an interrupted first snapshot is taken again on the same slot: the log knows the slot is its own', async () => {
    const table = await createTable(2000);
    const config = testConfig([table], { ingest: { snapshotBatchSize: 100 } });
    const controller = new AbortController();
    // Stop after the first snapshot batch: the slot exists, the snapshot is not done.
    await ingestUntilCaughtUp(config, { signal: controller.signal, onBatch: () => controller.abort() });
    expect(await slotConfirmed(config.source.config.slot)).not.toBeNull();
    await ingestUntilCaughtUp(config);
    const { diff, state } = await compareWithPostgres(client, config, table);
    expect(diff).toEqual({ missing: [], extra: [] });
    expect(state.size).toBe(2000);
  });
});
