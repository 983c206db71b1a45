/**
 * Issue 2: the initial snapshot of a 1M-row mixed-type table into the change log, against
 * `psql -c "COPY t TO STDOUT (FORMAT binary)" > /dev/null` on the same table in the same run (three
 * interleaved rounds, medians); and the ingest process's peak RSS against its RSS right after start-up.
 */
import { join } from 'node:path';
import { startIngestChild } from './lib/child.js';
import { connect, createMixedTable, PSQL, runToolOk, tempDir, withCluster } from './lib/cluster.js';
import { median } from './lib/stats.js';
import { benchResult, ratioResult, type BenchResult } from './lib/types.js';

const ROWS = Number(process.env.FF_BENCH_SNAPSHOT_ROWS ?? 1_000_000);
const RSS_TARGET_MB = 400;
const ROUNDS = 3;
const MB = 1024 * 1024;

export async function run(): Promise<BenchResult[]> {
  return withCluster(async (cluster) => {
    const client = await connect(cluster.url);
    const dir = tempDir('featureflow-bench-snapshot-');
    try {
      await createMixedTable(client, 'bench_snapshot', ROWS);
      // Three rounds, each the reference (the server's binary COPY into a client that throws it away)
      // then a featureflow snapshot into a new change log: the machine's load varies, so both sides
      // are measured through the same stretch of time, and each side's median is taken.
      const copyMs: number[] = [];
      const snapshotMs: number[] = [];
      let peakRss = 0;
      let startRss = 0;
      let cpuMs = 0;
      for (let round = 0; round < ROUNDS; round++) {
        copyMs.push(
          (
            await runToolOk(PSQL, [
              '-X',
              '-q',
              '-d',
              cluster.url,
              '-c',
              'COPY bench_snapshot TO STDOUT (FORMAT binary)',
            ])
          ).ms,
        );
        const child = startIngestChild({
          mode: 'catch-up',
          url: cluster.url,
          tables: ['public.bench_snapshot'],
          slot: `bench_snapshot_${round}`,
          publication: 'bench_snapshot',
          storePath: join(dir.path, `featureflow-${round}.duckdb`),
          ...(process.env.FF_BENCH_SNAPSHOT_BATCH
            ? { ingest: { snapshotBatchSize: Number(process.env.FF_BENCH_SNAPSHOT_BATCH) } }
            : {}),
        });
        const r = await child.result;
        if (r.snapshotRows !== ROWS) throw new Error(`the snapshot wrote ${r.snapshotRows} rows, expected ${ROWS}`);
        await client.query('SELECT pg_drop_replication_slot($1)', [`bench_snapshot_${round}`]);
        snapshotMs.push(r.snapshotMs);
        // The highest peak of the rounds, against its own process's RSS after start-up.
        if (r.peakRss > peakRss) ({ peakRss, startRss } = r);
        cpuMs = r.cpuMs;
      }
      const copyRate = ROWS / (median(copyMs) / 1000);
      const rate = ROWS / (median(snapshotMs) / 1000);
      if (process.env.FF_BENCH_DEBUG) {
        console.error(
          `featureflow: ${snapshotMs.map((m) => m.toFixed(0)).join(', ')} ms wall (last ${cpuMs.toFixed(0)} ms CPU, whole child); COPY ${copyMs.map((m) => m.toFixed(0)).join(', ')} ms`,
        );
      }
      const label = `${ROWS / 1e6}M`;
      return [
        ratioResult(
          {
            name: `snapshot ${label} mixed rows → change log`,
            value: rate,
            unit: 'rows/s',
            reference: { name: 'psql COPY binary > /dev/null', value: copyRate, unit: 'rows/s' },
          },
          { atLeast: 0.5 },
        ),
        benchResult({
          name: `snapshot ${label} peak RSS`,
          value: peakRss / MB,
          unit: 'MB',
          reference: { name: 'same process after start-up', value: startRss / MB, unit: 'MB' },
          target: `≤ ${RSS_TARGET_MB} MB`,
          pass: peakRss / MB <= RSS_TARGET_MB,
        }),
      ];
    } finally {
      await client.end();
      dir.remove();
    }
  });
}
