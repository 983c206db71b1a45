/**
 * Issue 12: the online stores loaded with 1M entities of 8 float32 features, in write() batches of
 * 10k rows, as a load from the offline store writes them.
 *
 * (a) Memory store: the process's RSS after the load (target ≤ 300 MB), next to its RSS before. Runs
 *     in a child process of its own (`node --expose-gc`), so other benchmarks' heaps do not count.
 * (b) Redis store (a throwaway redis-server): entities/s (target ≥ 100k/s), next to redis-benchmark's
 *     pipelined SETs of values of the same size into as many keys (no position guard, no encoding,
 *     no JavaScript). They alternate, each on an emptied server; medians of two.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { entity } from '../framework/features/entity.js';
import type { FeatureRow, FeatureRowBatch } from '../framework/features/feature-rows.js';
import { float32 } from '../framework/features/feature-types.js';
import { featureView, type FeatureView } from '../framework/features/feature-view.js';
import type { OnlineStore } from '../framework/interfaces/index.js';
import { memory } from '../stores/memory/index.js';
import { redis } from '../stores/redis/index.js';
import { startRedis } from '../testing/redis-server.js';
import { median } from './lib/stats.js';
import { benchResult, type BenchResult } from './lib/types.js';

const ENTITIES = Number(process.env.FF_BENCH_ONLINE_ENTITIES ?? 1_000_000);
const BATCH = 10_000;
const RSS_TARGET_MB = 300;
const RATE_TARGET = 100_000;
const ROUNDS = 2;
const T0 = 1_704_067_200_000_000n;

const view: FeatureView = featureView({
  name: 'bench_online',
  version: 1,
  entity: entity({ name: 'item', keys: ['id'] }),
  source: 'public.items',
  features: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}`, float32])),
});

/** The rows of entities [start, start + count), all at position start + 1 (a load's one position). */
function loadBatch(start: number, count: number): FeatureRowBatch {
  const rows = new Array<FeatureRow>(count);
  for (let i = 0; i < count; i++) {
    const id = start + i;
    const values = [id * 0.5, 1, 2, 3, 4, 5, 6, Math.fround(Math.random())];
    rows[i] = { op: 'r', key: [id], values, position: 1n, commitPosition: 1n, commitTime: T0 };
  }
  return { view, rows };
}

async function load(store: OnlineStore): Promise<number> {
  const started = performance.now();
  for (let start = 0; start < ENTITIES; start += BATCH)
    await store.write([loadBatch(start, Math.min(BATCH, ENTITIES - start))]);
  await store.setWatermark(view, 1n);
  return (performance.now() - started) / 1000;
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

// ---------------------------------------------------------------------------------------------
// (a) memory

interface MemoryFigures {
  before: number;
  after: number;
  seconds: number;
  count: number;
}

/** In the child: loads the memory store and prints its figures as JSON. */
async function memoryChild(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  const store = memory().create();
  await store.open();
  gc();
  const before = rssMB();
  const seconds = await load(store);
  gc();
  const after = rssMB();
  const count = await store.count(view);
  console.log(JSON.stringify({ before, after, seconds, count } satisfies MemoryFigures));
  await store.close();
}

function runMemoryChild(): Promise<MemoryFigures> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--memory-child'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as MemoryFigures)
        : reject(new Error(`memory child exited with ${code}`)),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// (b) Redis

/**
 * The reference: redis-benchmark's pipelined SETs of values as long as ours (57 bytes) into as many
 * keys, from one connection, 1 000 commands per pipeline: what the server takes at most.
 */
function redisBenchmark(port: number): number {
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    'set',
    '-n',
    String(ENTITIES),
    '-r',
    String(ENTITIES),
    '-d',
    '57',
    '-P',
    '1000',
    '-c',
    '1',
    '-q',
    '--csv',
  ];
  const csv = execFileSync('redis-benchmark', args, { encoding: 'utf8' });
  // "test","rps",… then "SET","275938.19",…
  const rps = Number(/^"SET","([\d.]+)"/m.exec(csv)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`redis-benchmark printed no SET rate: ${csv}`);
  return rps;
}

async function redisRates(): Promise<{ ours: number; reference: number }> {
  const server = await startRedis();
  const client = new Redis(server.url);
  try {
    const ours: number[] = [];
    const reference: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await client.flushall();
      reference.push(redisBenchmark(server.port));
      await client.flushall();
      const store = redis({ url: server.url, prefix: `ours${round}` }).create();
      await store.open();
      try {
        ours.push(ENTITIES / (await load(store)));
        const count = await store.count(view);
        if (count !== ENTITIES) throw new Error(`the Redis store holds ${count} entities after loading ${ENTITIES}`);
      } finally {
        await store.close();
      }
    }
    return { ours: median(ours), reference: median(reference) };
  } finally {
    client.disconnect();
    await server.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const mem = await runMemoryChild();
  if (mem.count !== ENTITIES) throw new Error(`the memory store holds ${mem.count} entities after loading ${ENTITIES}`);
  const rates = await redisRates();
  const millions = `${(ENTITIES / 1e6).toFixed(2)}M`;
  return [
    benchResult({
      name: `memory online store: RSS after loading ${millions} entities × 8 float32 (load ${(ENTITIES / mem.seconds / 1e6).toFixed(2)}M/s)`,
      value: mem.after,
      unit: 'MB',
      reference: { name: 'RSS of the same process before the load', value: mem.before, unit: 'MB' },
      target: `≤ ${RSS_TARGET_MB} MB`,
      pass: mem.after <= RSS_TARGET_MB,
    }),
    benchResult({
      name: `Redis online store: load of ${millions} entities × 8 float32, write() of 10k rows`,
      value: rates.ours,
      unit: 'entities/s',
      reference: {
        name: 'redis-benchmark SET, 57-byte values, 1 000 per pipeline',
        value: rates.reference,
        unit: 'SETs/s',
      },
      target: `≥ ${RATE_TARGET / 1000}k entities/s`,
      pass: rates.ours >= RATE_TARGET,
    }),
  ];
}

if (process.argv[2] === '--memory-child') await memoryChild();
else if (import.meta.url === `file://${process.argv[1]}`) console.log(await run());
