/**
 * `npm run demo`: the whole path on embedded defaults. Starts a throwaway PostgreSQL cluster (unless
 * DATABASE_URL is set), creates a demo table with rows, runs a writer while featureflow snapshots and
 * follows the table into the DuckDB change log and a versioned feature table, prints what arrived and
 * checks it against PostgreSQL, then exports a point-in-time-correct training set to Parquet.
 */
import { rmSync } from 'node:fs';
import pg from 'pg';
import {
  closeContainer,
  createContainer,
  defineConfig,
  duckdb,
  entity,
  featureView,
  float64,
  formatPosition,
  openOfflineStore,
  parsePosition,
  postgres,
  text,
  TOKENS,
} from '../../index.js';
import { openDuckDB } from '../../stores/duckdb/duckdb-database.js';
import { startPgCluster, type PgCluster } from '../../testing/pg-cluster.js';

const TABLE = 'public.featureflow_demo_orders';
const STORE = '.featureflow/demo.duckdb';
const TRAINING_SET = '.featureflow/demo-training-set.parquet';

/** One feature view over the demo table: each order's amount, status and whether it is paid. */
const order = entity({ name: 'order', keys: ['id'] });
const orderFeatures = featureView({
  name: 'order_features',
  version: 1,
  entity: order,
  source: TABLE,
  features: { amount: float64, status: text, paid: float64 },
  transform: (row) => ({
    amount: Number(row.amount),
    status: row.status as string,
    paid: row.status === 'paid' ? 1 : 0,
  }),
});

function say(text: string): void {
  process.stdout.write(text + '\n');
}

async function main(): Promise<void> {
  let cluster: PgCluster | undefined;
  let url = process.env.DATABASE_URL;
  if (!url) {
    say('starting a throwaway PostgreSQL cluster (wal_level=logical)…');
    cluster = await startPgCluster();
    url = cluster.url;
  }
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await db.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await db.query(`CREATE TABLE ${TABLE} (
      id bigserial PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL,
      status text NOT NULL, tags text[], created_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    await db.query(
      `INSERT INTO ${TABLE} (customer, amount, status, tags)
       SELECT g % 500, round((random() * 1000)::numeric, 2), 'new', ARRAY['demo'] FROM generate_series(1, 20000) g`,
    );
    say(`created ${TABLE} with 20000 rows`);

    rmSync(STORE, { force: true });
    rmSync(STORE + '.wal', { force: true });
    const config = defineConfig({
      source: postgres({ connectionString: url, tables: [TABLE], slot: 'featureflow_demo' }),
      store: duckdb({ path: STORE }),
      features: { views: [orderFeatures] },
      ingest: { heartbeatSeconds: 1 },
      logLevel: 'warn',
    });
    const container = await createContainer(config);
    const engine = await container.getAsync(TOKENS.IngestEngine);
    const controller = new AbortController();
    let snapshotRows = 0;
    let snapshotDone = false;
    let streamed = 0;
    let checkpoint = 0n;
    const started = Date.now();
    const run = engine.run({
      signal: controller.signal,
      onBatch: (b) => {
        if (b.snapshot) snapshotRows += b.changes;
        if (b.snapshot?.done) snapshotDone = true;
        else streamed += b.changes;
        if (b.complete) checkpoint = b.checkpoint;
      },
    });

    say('ingesting (snapshot, then the replication stream) while a writer inserts, updates and deletes for 3 s…');
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    let ops = 0;
    const until = Date.now() + 3000;
    // Spine rows: (order id, time) pairs sampled while the writer runs, labelled by PostgreSQL's own
    // view of the order at that moment; the training set must give the features as they were then.
    // Only after the snapshot: history before it is unknown (snapshot rows are valid from its time).
    const spine: { id: bigint; event_timestamp: string; status_then: string | null }[] = [];
    // Sampling starts once the snapshot is done: on a slow machine that can be after the 3 s.
    while (Date.now() < until || (spine.length < 20 && Date.now() < until + 120_000)) {
      if (snapshotDone && ops % 150 === 0) {
        const id = 1 + Math.floor(Math.random() * 20000);
        const { rows } = await writer.query(`SELECT status, clock_timestamp()::text AS t FROM ${TABLE} WHERE id = $1`, [
          id,
        ]);
        const at = (await writer.query('SELECT clock_timestamp()::text AS t')).rows[0].t as string;
        spine.push({
          id: BigInt(id),
          event_timestamp: at,
          status_then: (rows[0]?.status as string | undefined) ?? null,
        });
      }
      const r = Math.random();
      if (r < 0.4)
        await writer.query(`INSERT INTO ${TABLE} (customer, amount, status) VALUES ($1, $2, 'new')`, [
          ops % 500,
          (ops % 997) / 7,
        ]);
      else if (r < 0.85)
        await writer.query(`UPDATE ${TABLE} SET status = 'paid', amount = amount + 1 WHERE id = $1`, [
          1 + Math.floor(Math.random() * 20000),
        ]);
      else await writer.query(`DELETE FROM ${TABLE} WHERE id = $1`, [1 + Math.floor(Math.random() * 20000)]);
      ops++;
    }
    await writer.end();
    const target = parsePosition((await db.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l);
    while (checkpoint < target) await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await run;
    const seconds = (Date.now() - started) / 1000;
    const source = await container.getAsync(TOKENS.Source);
    const record = (await (await container.getAsync(TOKENS.ChangeLog)).state()).sourceRecord;
    const slot = await source.status(record);
    await source.teardown(record);
    await closeContainer(container);

    say(
      `\nsnapshot: ${snapshotRows} rows; stream: ${streamed} changes from ${ops} writer transactions; ${seconds.toFixed(1)} s`,
    );
    say(`checkpoint ${formatPosition(checkpoint)}; source lag when stopped: ${slot.lag ?? '-'} ${slot.lagUnit}\n`);

    const duck = await openDuckDB(STORE, { readOnly: true });
    try {
      const byOp = (
        await duck.connection.runAndReadAll(`SELECT op, count(*) AS n FROM change_log GROUP BY op ORDER BY op`)
      ).getRowObjects();
      say('what reached the change log (DuckDB view change_log):');
      const names: Record<string, string> = {
        r: 'read (snapshot)',
        c: 'create',
        u: 'update',
        d: 'delete',
        t: 'truncate',
      };
      for (const row of byOp)
        say(`  ${String(names[row.op as string] ?? row.op).padEnd(16)} ${String(row.n).padStart(8)}`);
      const recent = (
        await duck.connection.runAndReadAll(
          `SELECT op, key, after, commit_time::VARCHAR AS at FROM change_log WHERE op <> 'r' ORDER BY seq DESC LIMIT 5`,
        )
      ).getRowObjects();
      say('\nlatest changes:');
      for (const row of recent)
        say(`  ${row.op} ${row.key} at ${row.at}${row.after ? ` → ${String(row.after).slice(0, 100)}` : ''}`);
      const live = Number(
        (await duck.connection.runAndReadAll(`SELECT count(*) FROM current_rows('${TABLE}')`)).getRows()[0]![0],
      );
      const expected = Number((await db.query(`SELECT count(*) AS n FROM ${TABLE}`)).rows[0].n);
      say(
        `\nrows rebuilt from the change log: ${live}; rows in PostgreSQL: ${expected} → ${live === expected ? 'equal' : 'DIFFERENT'}`,
      );
      if (live !== expected) process.exitCode = 1;
    } finally {
      duck.close();
    }
    const store = await openOfflineStore(STORE, { definitions: { views: [orderFeatures] } });
    try {
      const [view] = await store.status();
      const orders = Number((await db.query(`SELECT count(*) AS n FROM ${TABLE}`)).rows[0].n);
      say(
        `\nfeature view ${view!.view} v${view!.version} (table ${view!.table}): ${view!.entities} current orders ` +
          `(PostgreSQL: ${orders} → ${view!.entities === orders ? 'equal' : 'DIFFERENT'}), ${view!.rows} history rows, ` +
          `${view!.deadLetters} dead letters`,
      );
      if (view!.entities !== orders) process.exitCode = 1;
      const result = await store.export({ trainingSet: { spine, features: [orderFeatures] } }, TRAINING_SET);
      const training = await store.trainingSet({ spine, features: [orderFeatures] });
      const statusThen = training.getChild('status_then')!.toArray() as (string | null)[];
      const status = training.getChild('status')!.toArray() as (string | null)[];
      const agree = status.filter((s, i) => s === statusThen[i]).length;
      say(`training set: ${result.rows} spine rows × order_features → ${TRAINING_SET} (manifest beside it)`);
      say(
        `point in time: the status joined for each (order, time) equals PostgreSQL's status at that time for ${agree} of ${status.length} rows`,
      );
      if (agree !== status.length) process.exitCode = 1;
    } finally {
      store.close();
    }
    say(`\nthe change log and feature tables are in ${STORE}; open it with DuckDB to explore.`);
  } finally {
    await db.end();
    await cluster?.stop();
  }
}

await main();
