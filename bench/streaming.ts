/**
 * Issue 2: applying 1M inserts (1000 transactions of 1000 rows, waiting in the slot) durably into the
 * change log, against `pg_recvlogical` draining the same WAL from a second slot created at the same
 * point, with the same pgoutput options, to /dev/null.
 */
import { join } from 'node:path';
import { startIngestChild } from './lib/child';
import { connect, createMixedTable, mixedInsertSql, PG_RECVLOGICAL, runToolOk, tempDir, withCluster } from './lib/cluster';
import { ratioResult, type BenchResult } from './lib/types';

const TRANSACTIONS = Number(process.env.FF_BENCH_STREAM_TXNS ?? 1000);
const ROWS_PER_TRANSACTION = 1000;

export async function run(): Promise<BenchResult[]> {
  return withCluster(async (cluster) => {
    const client = await connect(cluster.url);
    const dir = tempDir('featureflow-bench-streaming-');
    const spec = {
      mode: 'catch-up' as const,
      url: cluster.url,
      tables: ['public.bench_stream'],
      slot: 'bench_stream',
      publication: 'bench_stream',
      storePath: join(dir.path, 'featureflow.duckdb'),
    };
    try {
      await createMixedTable(client, 'bench_stream', 0);
      // First run: the (empty) snapshot creates the slot and the publication; its checkpoint is taken before the writes.
      await startIngestChild(spec).result;
      await client.query(`SELECT pg_create_logical_replication_slot('bench_recv', 'pgoutput')`);

      for (let t = 0; t < TRANSACTIONS; t++) {
        const from = t * ROWS_PER_TRANSACTION + 1;
        await client.query(mixedInsertSql('bench_stream', from, from + ROWS_PER_TRANSACTION - 1));
      }
      const changes = TRANSACTIONS * ROWS_PER_TRANSACTION;
      const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
      const endpos = rows[0].lsn as string;

      const recv = await runToolOk(PG_RECVLOGICAL, [
        '-d', cluster.url, '--slot=bench_recv', '--start', `--endpos=${endpos}`, '--no-loop',
        '--plugin=pgoutput', '-o', 'proto_version=1', '-o', 'publication_names=bench_stream', '-o', 'binary=true',
        '-f', '/dev/null',
      ]);
      const recvRate = changes / (recv.ms / 1000);

      const r = await startIngestChild(spec).result;
      if (r.streamed !== changes) throw new Error(`featureflow applied ${r.streamed} changes, expected ${changes}`);
      const rate = changes / (r.runMs / 1000);
      if (process.env.FF_BENCH_DEBUG) console.error(`featureflow: ${r.runMs.toFixed(0)} ms wall, ${r.cpuMs.toFixed(0)} ms CPU; pg_recvlogical ${recv.ms.toFixed(0)} ms`);
      return [
        ratioResult({
          name: `stream ${changes / 1e6}M inserts (${ROWS_PER_TRANSACTION}-row txns) → change log`,
          value: rate,
          unit: 'changes/s',
          reference: { name: 'pg_recvlogical → /dev/null', value: recvRate, unit: 'changes/s' },
        }, { atLeast: 1.0 }),
      ];
    } finally {
      await client.end();
      dir.remove();
    }
  });
}
