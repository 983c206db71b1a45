/**
 * Issue 11: a table of random 784-byte images (`id int, label int, pixels bytea`) through the whole
 * offline path, each figure next to a reference measured in the same run (interleaved rounds, medians):
 *
 * - the snapshot of 300k images into the change log alone, and with the digits view (features/digits:
 *   a 28×28 float32 tensor per image), against `psql COPY … (FORMAT binary) > /dev/null`; peak RSS;
 * - 100k image inserts in 100-row transactions streamed with the digits view, against `pg_recvlogical`
 *   draining the same WAL from a slot created at the same point;
 * - Parquet and Arrow exports of the 300k digit tensors, against DuckDB's own `COPY (…) TO` parquet
 *   of the same rows; peak RSS;
 * - DuckDB alone inserting those tensors (`FLOAT[784]`) into a new file attached as the writer attaches
 *   its store, against the same COPY: how fast these tensors can be written to DuckDB at all here,
 *   the ceiling of the snapshot with the digits view.
 *
 * `FF_BENCH_IMAGES_SCALE` (default 1) scales the row counts for a quick run, e.g. 0.1.
 */
import { join } from 'node:path';
import { startIngestChild, type ChildResult, type ChildSpec } from './lib/child.js';
import { connect, drainWithRecvlogical, PSQL, runToolOk, tempDir, withCluster } from './lib/cluster.js';
import { median } from './lib/stats.js';
import { benchResult, ratioResult, type BenchResult } from './lib/types.js';

const SCALE = Number(process.env.FF_BENCH_IMAGES_SCALE ?? 1);
const SNAPSHOT_ROWS = Math.round(300_000 * SCALE);
const STREAM_ROWS = Math.round((100_000 * SCALE) / 100) * 100;
const ROWS_PER_TRANSACTION = 100;
const ROUNDS = 3;
const SNAPSHOT_RSS_MB = 400;
const EXPORT_RSS_MB = 500;
const MB = 1024 * 1024;

/** Rows `from`…`to` of random images: 49 random UUIDs (16 bytes each) make 784 bytes that do not compress. */
function imagesSql(table: string, from: number, to: number): string {
  return `INSERT INTO ${table} (id, label, pixels)
    SELECT g, g % 10, (SELECT string_agg(uuid_send(gen_random_uuid()), ''::bytea) FROM generate_series(1, 49 + 0 * g))
      FROM generate_series(${from}, ${to}) g`;
}

/** The file each kind of export (and DuckDB's own insert of the tensors) writes. */
const EXTENSIONS = { insert: 'duckdb', reference: 'parquet', parquet: 'parquet', arrow: 'arrow' } as const;

function count(rows: number): string {
  return rows >= 1000 ? `${rows / 1000}k` : String(rows);
}

export async function run(): Promise<BenchResult[]> {
  return withCluster(async (cluster) => {
    const client = await connect(cluster.url);
    const dir = tempDir('featureflow-bench-images-');
    const spec = (name: string, table: string, digits: boolean): ChildSpec => ({
      mode: 'catch-up',
      url: cluster.url,
      tables: [`public.${table}`],
      slot: name,
      publication: table,
      storePath: join(dir.path, `${name}.duckdb`),
      ...(digits ? { digits: `public.${table}` } : {}),
    });
    const debug = (line: string) => process.env.FF_BENCH_DEBUG && console.error(line);
    try {
      // --- Snapshot -------------------------------------------------------------------------------
      await client.query('CREATE TABLE bench_images (id int PRIMARY KEY, label int NOT NULL, pixels bytea NOT NULL)');
      for (let from = 1; from <= SNAPSHOT_ROWS; from += 50_000)
        await client.query(imagesSql('bench_images', from, Math.min(SNAPSHOT_ROWS, from + 49_999)));
      await client.query('VACUUM (FREEZE, ANALYZE) bench_images');
      const copyMs: number[] = [];
      const logMs: number[] = [];
      const digitsMs: number[] = [];
      let snapshotPeak: ChildResult | undefined;
      for (let round = 0; round < ROUNDS; round++) {
        copyMs.push(
          (await runToolOk(PSQL, ['-X', '-q', '-d', cluster.url, '-c', 'COPY bench_images TO STDOUT (FORMAT binary)']))
            .ms,
        );
        for (const digits of [false, true]) {
          const name = `images_${digits ? 'digits' : 'log'}_${round}`;
          const r = await startIngestChild(spec(name, 'bench_images', digits)).result;
          if (r.snapshotRows !== SNAPSHOT_ROWS)
            throw new Error(`the snapshot wrote ${r.snapshotRows} rows, expected ${SNAPSHOT_ROWS}`);
          await client.query('SELECT pg_drop_replication_slot($1)', [name]);
          (digits ? digitsMs : logMs).push(r.snapshotMs);
          if (!snapshotPeak || r.peakRss > snapshotPeak.peakRss) snapshotPeak = r;
        }
      }
      debug(
        `snapshot: COPY ${copyMs.map(Math.round)} ms; log ${logMs.map(Math.round)} ms; digits ${digitsMs.map(Math.round)} ms`,
      );
      const copyRate = SNAPSHOT_ROWS / (median(copyMs) / 1000);
      const copyRef = { name: 'psql COPY binary > /dev/null', value: copyRate, unit: 'rows/s' };
      const results: BenchResult[] = [
        ratioResult(
          {
            name: `snapshot ${count(SNAPSHOT_ROWS)} images → change log`,
            value: SNAPSHOT_ROWS / (median(logMs) / 1000),
            unit: 'rows/s',
            reference: copyRef,
          },
          { atLeast: 0.3 },
        ),
        ratioResult(
          {
            name: `snapshot ${count(SNAPSHOT_ROWS)} images → change log + digits view`,
            value: SNAPSHOT_ROWS / (median(digitsMs) / 1000),
            unit: 'rows/s',
            reference: copyRef,
          },
          { atLeast: 0.15 },
        ),
        benchResult({
          name: `snapshot ${count(SNAPSHOT_ROWS)} images peak RSS`,
          value: snapshotPeak!.peakRss / MB,
          unit: 'MB',
          reference: { name: 'same process after start-up', value: snapshotPeak!.startRss / MB, unit: 'MB' },
          target: `≤ ${SNAPSHOT_RSS_MB} MB`,
          pass: snapshotPeak!.peakRss / MB <= SNAPSHOT_RSS_MB,
        }),
      ];

      // --- Exports of the digit tensors (the first round's store with the view) -------------------
      const store = join(dir.path, 'images_digits_0.duckdb');
      const exportOf = async (kind: 'insert' | 'reference' | 'parquet' | 'arrow', round: number) =>
        startIngestChild({
          mode: kind === 'insert' ? 'insert' : 'export',
          url: cluster.url,
          tables: [],
          slot: '',
          publication: '',
          storePath: store,
          digits: 'public.bench_images',
          exportPath: join(dir.path, `export-${kind}-${round}.${EXTENSIONS[kind]}`),
          reference: kind === 'reference',
        }).result;
      const exportMs = {
        insert: [] as number[],
        reference: [] as number[],
        parquet: [] as number[],
        arrow: [] as number[],
      };
      let exportPeak: ChildResult | undefined;
      for (let round = 0; round < ROUNDS; round++) {
        for (const kind of ['insert', 'reference', 'parquet', 'arrow'] as const) {
          const r = await exportOf(kind, round);
          if (r.snapshotRows !== SNAPSHOT_ROWS)
            throw new Error(`the ${kind} export wrote ${r.snapshotRows} rows, expected ${SNAPSHOT_ROWS}`);
          exportMs[kind].push(r.runMs);
          if ((kind === 'parquet' || kind === 'arrow') && (!exportPeak || r.peakRss > exportPeak.peakRss))
            exportPeak = r;
        }
      }
      debug(
        `export: ${Object.entries(exportMs)
          .map(([k, v]) => `${k} ${v.map(Math.round)} ms`)
          .join('; ')}`,
      );
      // The ceiling of the digits snapshot's target: DuckDB alone writing the same tensors.
      results.splice(
        2,
        0,
        benchResult({
          name: `DuckDB alone: INSERT … SELECT of the ${count(SNAPSHOT_ROWS)} digit tensors (FLOAT[784]) into a writer's file`,
          value: SNAPSHOT_ROWS / (median(exportMs.insert) / 1000),
          unit: 'rows/s',
          reference: copyRef,
          target: '(report)',
          pass: true,
        }),
      );
      const duckRef = {
        name: 'DuckDB COPY (same rows) TO parquet',
        value: SNAPSHOT_ROWS / (median(exportMs.reference) / 1000),
        unit: 'rows/s',
      };
      for (const kind of ['parquet', 'arrow'] as const) {
        results.push(
          ratioResult(
            {
              name: `export ${count(SNAPSHOT_ROWS)} digit tensors → ${kind === 'arrow' ? 'Arrow IPC' : 'Parquet'}`,
              value: SNAPSHOT_ROWS / (median(exportMs[kind]) / 1000),
              unit: 'rows/s',
              reference: duckRef,
            },
            { atLeast: 0.3 },
          ),
        );
      }
      results.push(
        benchResult({
          name: `export ${count(SNAPSHOT_ROWS)} digit tensors peak RSS`,
          value: exportPeak!.peakRss / MB,
          unit: 'MB',
          reference: { name: 'same process before the export', value: exportPeak!.startRss / MB, unit: 'MB' },
          target: `≤ ${EXPORT_RSS_MB} MB`,
          pass: exportPeak!.peakRss / MB <= EXPORT_RSS_MB,
        }),
      );

      // --- Streaming inserts with the digits view --------------------------------------------------
      await client.query('DROP TABLE bench_images');
      await client.query('CHECKPOINT');
      await client.query(
        'CREATE TABLE bench_image_stream (id int PRIMARY KEY, label int NOT NULL, pixels bytea NOT NULL)',
      );
      // Per round, before the writes: a featureflow slot and change log (its snapshot of the empty
      // table) and a pg_recvlogical slot, so both read the same WAL.
      for (let round = 0; round < ROUNDS; round++) {
        await startIngestChild(spec(`stream_${round}`, 'bench_image_stream', true)).result;
        await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`stream_recv_${round}`]);
      }
      for (let from = 1; from <= STREAM_ROWS; from += ROWS_PER_TRANSACTION)
        await client.query(imagesSql('bench_image_stream', from, from + ROWS_PER_TRANSACTION - 1));
      const endpos = (await client.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn as string;
      const recvMs: number[] = [];
      const streamMs: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const recv = await drainWithRecvlogical(cluster.url, `stream_recv_${round}`, 'bench_image_stream', endpos);
        recvMs.push(recv.ms);
        const r = await startIngestChild(spec(`stream_${round}`, 'bench_image_stream', true)).result;
        if (r.streamed !== STREAM_ROWS)
          throw new Error(`featureflow applied ${r.streamed} changes, expected ${STREAM_ROWS}`);
        streamMs.push(r.runMs);
      }
      debug(`stream: featureflow ${streamMs.map(Math.round)} ms; pg_recvlogical ${recvMs.map(Math.round)} ms`);
      results.push(
        ratioResult(
          {
            name: `stream ${count(STREAM_ROWS)} image inserts (${ROWS_PER_TRANSACTION}-row txns) + digits view`,
            value: STREAM_ROWS / (median(streamMs) / 1000),
            unit: 'changes/s',
            reference: {
              name: 'pg_recvlogical → /dev/null',
              value: STREAM_ROWS / (median(recvMs) / 1000),
              unit: 'changes/s',
            },
          },
          { atLeast: 0.5 },
        ),
      );
      return results;
    } finally {
      await client.end();
      dir.remove();
    }
  });
}
