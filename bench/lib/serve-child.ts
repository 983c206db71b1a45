/**
 * `featureflow serve` in a process of its own, as the CLI runs it (started by
 * {@link startServeChild}): the container with the serving module, {@link ServeRuntime}, a catch-up
 * run (the snapshot), then the ingest following the source until `stop`. `ready` carries the HTTP
 * URL once `/health` answers 200; `result` the process's CPU time and peak RSS, and per second how busy
 * its main thread was.
 */
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { closeContainer, createContainer, msBehind, ServeRuntime } from '../../index.js';
import { cliChildOptions, startBenchChild, type BenchChild } from './bench-child.js';
import { emit, runChild } from './child-io.js';
import { serveConfig, type ServeSpec } from './serve-fixture.js';

export interface ServeReady {
  /** Where the HTTP service listens. */
  url: string;
}

export interface ServeResult {
  /** CPU time (user + system, every thread) of the process, ms. */
  cpuMs: number;
  /** Peak RSS, bytes. */
  peakRss: number;
  /** Garbage collections of the main thread while following the source: how many, their total and longest pause, ms. */
  gc: { count: number; totalMs: number; maxMs: number };
  /**
   * A process that ingests: per durable stream batch with changes, when the ingest reported it
   * (`onBatch`, ms since the Unix epoch) and how long after its newest commit in the source, ms.
   */
  durable: [number, number][];
  /**
   * Per second while following: when (ms since the Unix epoch), the share of it the main thread's
   * event loop was busy (0–1), and the p99 of its delay, ms: how long work that became ready (a
   * change received, a record fetched) waited for the thread.
   */
  mainThread: [number, number, number][];
}

/** Starts a serve process as the CLI runs featureflow (see cliChildOptions). */
export function startServeChild(spec: ServeSpec): BenchChild<ServeReady, ServeResult> {
  return startBenchChild(fileURLToPath(import.meta.url), spec, cliChildOptions());
}

async function serve(spec: ServeSpec, stopped: Promise<void>): Promise<ServeResult> {
  const config = serveConfig(spec);
  let collected = { count: 0, totalMs: 0, maxMs: 0 };
  const durable: [number, number][] = [];
  const mainThread: [number, number, number][] = [];
  const container = await createContainer(config, { serving: true });
  try {
    const ingests = !spec.kafka || spec.kafka.ingest;
    const runtime = await ServeRuntime.start(container, config, { ingest: ingests });
    try {
      // A process that only consumes the bus has no source to catch up with.
      if (ingests) await runtime.run({ untilCaughtUp: true });
      await runtime.idle();
      const controller = new AbortController();
      const following = runtime.run({
        signal: controller.signal,
        onBatch: (b) => {
          if (b.commitTime === undefined) return;
          const now = Date.now();
          durable.push([now, msBehind(b.commitTime, now)]);
        },
      });
      const deadline = Date.now() + 30_000;
      while ((await fetch(`${runtime.url}/health`)).status !== 200) {
        if (Date.now() > deadline) throw new Error(`${runtime.url}/health did not answer 200 within 30 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // Pauses of the main thread's collector delay every change that arrives meanwhile.
      const gc = { count: 0, totalMs: 0, maxMs: 0 };
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          gc.count++;
          gc.totalMs += entry.duration;
          gc.maxMs = Math.max(gc.maxMs, entry.duration);
        }
      });
      observer.observe({ entryTypes: ['gc'] });
      collected = gc;
      const delay = monitorEventLoopDelay({ resolution: 1 });
      delay.enable();
      let utilization = performance.eventLoopUtilization();
      const sampler = setInterval(() => {
        const now = performance.eventLoopUtilization();
        mainThread.push([
          Date.now(),
          performance.eventLoopUtilization(now, utilization).utilization,
          delay.percentile(99) / 1e6,
        ]);
        utilization = now;
        delay.reset();
      }, 1000);
      sampler.unref();
      emit('ready', { url: runtime.url } satisfies ServeReady);
      await Promise.race([stopped, following]);
      clearInterval(sampler);
      delay.disable();
      controller.abort();
      await following;
      await runtime.idle();
    } finally {
      await runtime.stop();
    }
  } finally {
    await closeContainer(container);
  }
  const usage = process.resourceUsage();
  return {
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
    peakRss: usage.maxRSS * 1024,
    gc: collected,
    durable,
    mainThread,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runChild(serve);
