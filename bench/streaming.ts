/**
 * Issue 2: applying 1M inserts (1000 transactions of 1000 rows, waiting in the slot) durably into the
 * change log, against `pg_recvlogical` draining the same WAL from another slot created at the same
 * point, with the same pgoutput options, to /dev/null. Three interleaved rounds (a slot each), medians.
 * Then the same for deletes of those rows (reported, no target): a delete carries only its key, so
 * the server decodes it faster and the share of the ingest's own work is larger.
 */
import { join } from 'node:path';
import { startIngestChild } from './lib/child.js';
import {
  connect,
  createMixedTable,
  drainWithRecvlogical,
  mixedInsertSql,
  tempDir,
  withCluster,
} from './lib/cluster.js';
import { median } from './lib/stats.js';
import { ratioResult, type BenchResult } from './lib/types.js';

const TRANSACTIONS = Number(process.env.FF_BENCH_STREAM_TXNS ?? 1000);
const ROWS_PER_TRANSACTION = 1000;
const ROUNDS = 3;

export async function run(): Promise<BenchResult[]> {
  const inserts = await measure('inserts');
  const deletes = await measure('deletes');
  return [inserts, { ...deletes, target: '(report)', pass: true }];
}

/** One measurement: `deletes` first inserts the rows (taken by the snapshot), then deletes them. */
async function measure(kind: 'inserts' | 'deletes'): Promise<BenchResult> {
  return withCluster(async (cluster) => {
    const client = await connect(cluster.url);
    const dir = tempDir('featureflow-bench-streaming-');
    const specOf = (round: number) => ({
      mode: 'catch-up' as const,
      url: cluster.url,
      tables: ['public.bench_stream'],
      slot: `bench_stream_${round}`,
      publication: 'bench_stream',
      storePath: join(dir.path, `featureflow-${round}.duckdb`),
    });
    try {
      await createMixedTable(client, 'bench_stream', kind === 'deletes' ? TRANSACTIONS * ROWS_PER_TRANSACTION : 0);
      // Per round, before the writes: a featureflow slot and change log (a snapshot creates both, its
      // checkpoint taken before the writes) and a pg_recvlogical slot.
      for (let round = 0; round < ROUNDS; round++) {
        await startIngestChild(specOf(round)).result;
        await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [`bench_recv_${round}`]);
      }

      for (let t = 0; t < TRANSACTIONS; t++) {
        const from = t * ROWS_PER_TRANSACTION + 1;
        const to = from + ROWS_PER_TRANSACTION - 1;
        await client.query(
          kind === 'inserts'
            ? mixedInsertSql('bench_stream', from, to)
            : `DELETE FROM bench_stream WHERE id BETWEEN ${from} AND ${to}`,
        );
      }
      const changes = TRANSACTIONS * ROWS_PER_TRANSACTION;
      const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
      const endpos = rows[0].lsn as string;

      // Interleaved rounds, each side's median: the machine's speed drifts within a run.
      const recvMs: number[] = [];
      const ingestMs: number[] = [];
      const ingestCpuMs: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const recv = await drainWithRecvlogical(cluster.url, `bench_recv_${round}`, 'bench_stream', endpos);
        recvMs.push(recv.ms);
        const r = await startIngestChild(specOf(round)).result;
        if (r.streamed !== changes) throw new Error(`featureflow applied ${r.streamed} changes, expected ${changes}`);
        ingestMs.push(r.runMs);
        ingestCpuMs.push(r.runCpuMs ?? Number.NaN);
      }
      if (process.env.FF_BENCH_DEBUG) {
        console.error(
          `${kind}: featureflow ${ingestMs.map((m) => m.toFixed(0)).join(', ')} ms wall (${ingestCpuMs.map((m) => m.toFixed(0)).join(', ')} ms CPU); pg_recvlogical ${recvMs.map((m) => m.toFixed(0)).join(', ')} ms`,
        );
      }
      return ratioResult(
        {
          name: `stream ${changes / 1e6}M ${kind} (${ROWS_PER_TRANSACTION}-row txns) → change log`,
          value: changes / (median(ingestMs) / 1000),
          unit: 'changes/s',
          reference: {
            name: 'pg_recvlogical → /dev/null',
            value: changes / (median(recvMs) / 1000),
            unit: 'changes/s',
          },
        },
        { atLeast: 1.0 },
      );
    } finally {
      await client.end();
      dir.remove();
    }
  });
}
