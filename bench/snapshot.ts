/**
 * Issue 2: the initial snapshot of a 1M-row mixed-type table into the change log, against
 * `psql -c "COPY t TO STDOUT (FORMAT binary)" > /dev/null` on the same table in the same run; and the
 * ingest process's peak RSS against its RSS right after start-up.
 */
import { join } from 'node:path';
import { startIngestChild } from './lib/child';
import { connect, createMixedTable, PSQL, runToolOk, tempDir, withCluster } from './lib/cluster';
import { median } from './lib/stats';
import { benchResult, ratioResult, type BenchResult } from './lib/types';

const ROWS = Number(process.env.FF_BENCH_SNAPSHOT_ROWS ?? 1_000_000);
const RSS_TARGET_MB = 400;
const MB = 1024 * 1024;

export async function run(): Promise<BenchResult[]> {
  return withCluster(async (cluster) => {
    const client = await connect(cluster.url);
    const dir = tempDir('featureflow-bench-snapshot-');
    try {
      await createMixedTable(client, 'bench_snapshot', ROWS);
      // The reference: the server's binary COPY into a client that throws it away. Three runs, the median.
      const copyMs: number[] = [];
      for (let i = 0; i < 3; i++) {
        copyMs.push((await runToolOk(PSQL, ['-X', '-q', '-d', cluster.url, '-c', 'COPY bench_snapshot TO STDOUT (FORMAT binary)'])).ms);
      }
      const copyRate = ROWS / (median(copyMs) / 1000);

      const child = startIngestChild({
        mode: 'catch-up',
        url: cluster.url,
        tables: ['public.bench_snapshot'],
        slot: 'bench_snapshot',
        publication: 'bench_snapshot',
        storePath: join(dir.path, 'featureflow.duckdb'),
        ...(process.env.FF_BENCH_SNAPSHOT_BATCH ? { ingest: { snapshotBatchSize: Number(process.env.FF_BENCH_SNAPSHOT_BATCH) } } : {}),
      });
      const r = await child.result;
      if (r.snapshotRows !== ROWS) throw new Error(`the snapshot wrote ${r.snapshotRows} rows, expected ${ROWS}`);
      const rate = ROWS / (r.snapshotMs / 1000);
      if (process.env.FF_BENCH_DEBUG) console.error(`featureflow: ${r.snapshotMs.toFixed(0)} ms wall, ${r.cpuMs.toFixed(0)} ms CPU (whole child); COPY ${copyMs.map((m) => m.toFixed(0)).join(', ')} ms`);
      const label = `${ROWS / 1e6}M`;
      return [
        ratioResult({
          name: `snapshot ${label} mixed rows → change log`,
          value: rate,
          unit: 'rows/s',
          reference: { name: 'psql COPY binary > /dev/null', value: copyRate, unit: 'rows/s' },
        }, { atLeast: 0.5 }),
        benchResult({
          name: `snapshot ${label} peak RSS`,
          value: r.peakRss / MB,
          unit: 'MB',
          reference: { name: 'same process after start-up', value: r.startRss / MB, unit: 'MB' },
          target: `≤ ${RSS_TARGET_MB} MB`,
          pass: r.peakRss / MB <= RSS_TARGET_MB,
        }),
      ];
    } finally {
      await client.end();
      dir.remove();
    }
  });
}
