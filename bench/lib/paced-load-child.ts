/**
 * An open-loop HTTP load at a fixed rate, in a process of its own (started by {@link runPacedLoad}):
 * request i is due at start + i/rate whatever the answers before it (as wrk2 paces, unlike
 * autocannon, whose rate is a quota per second that each connection spends as fast as it can at the
 * start of the second). Due requests go out on an idle keep-alive connection to 127.0.0.1, a new one
 * when none is idle (up to 64; then it waits for one). Latency runs from the instant the generator
 * found the request due (its timer fired) to reading the whole response, on the monotonic clock, so
 * a wait for a connection counts; how late the timer fired after the request was due (its
 * granularity, a busy machine) is reported apart. Requests cycle through the given raw HTTP/1.1 texts.
 */
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startBenchChild } from './bench-child.js';
import { runChild } from './child-io.js';

export interface PacedLoadSpec {
  port: number;
  /** Requests per second. */
  rate: number;
  /** Measured seconds, after `warmupSeconds` whose requests are not counted. */
  seconds: number;
  warmupSeconds: number;
  /** Raw HTTP/1.1 requests (with `Host`, and `Content-Length` where there is a body), used in turn. */
  requests: string[];
}

export interface PacedLoadResult {
  /** Per measured request: found due → whole response, ms. */
  latencies: number[];
  /** Per measured request: due → found due (the timer's lateness), ms. */
  lateness: number[];
  /** Responses per status code (measured and warm-up). */
  statuses: Record<string, number>;
  /** Connections opened. */
  connections: number;
  /**
   * Measured requests answered per second, from the first one's due time to the last answer: the
   * rate asked for when the server keeps up, less when it does not (requests then queue).
   */
  answeredRate: number;
}

/** Runs the load in a child process and resolves with its figures. */
export function runPacedLoad(spec: PacedLoadSpec): Promise<PacedLoadResult> {
  const child = startBenchChild<unknown, PacedLoadResult>(fileURLToPath(import.meta.url), spec);
  return child.result;
}

/** Connections at most; a request due while all are busy waits for one (and its wait counts). */
const MAX_CONNECTIONS = 64;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** One keep-alive connection carrying one request at a time. */
class Connection {
  readonly ready: Promise<void>;
  private readonly socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private onResponse: ((status: number) => void) | undefined;

  constructor(
    port: number,
    private readonly onError: (error: Error) => void,
  ) {
    const socket: Socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket = socket;
    this.ready = new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    socket.on('error', onError);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  send(request: Buffer, onResponse: (status: number) => void): void {
    this.onResponse = onResponse;
    this.socket.write(request);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Completes a response once its head and `Content-Length` bytes of body are in. */
  private read(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.buffer.subarray(0, headEnd).toString('latin1');
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) {
      this.onError(new Error(`a response without Content-Length (chunked bodies are not read): ${head}`));
      return;
    }
    const end = headEnd + 4 + Number(length[1]);
    if (this.buffer.length < end) return;
    if (this.buffer.length > end) {
      this.onError(new Error('more bytes than one response, and requests are not pipelined'));
      return;
    }
    this.buffer = Buffer.alloc(0);
    const status = Number(head.slice(9, 12));
    const done = this.onResponse!;
    this.onResponse = undefined;
    done(status);
  }
}

async function main(spec: PacedLoadSpec, stopped: Promise<void>): Promise<PacedLoadResult> {
  const requests = spec.requests.map((r) => Buffer.from(r, 'latin1'));
  let failure: Error | undefined;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const onError = (error: Error) => {
    failure ??= error;
    finish();
  };
  const idle: Connection[] = [];
  const all: Connection[] = [];
  const open = async () => {
    const c = new Connection(spec.port, onError);
    all.push(c);
    await c.ready;
    return c;
  };
  // A few connections up front, so that the measured span does not open them.
  for (let i = 0; i < 4; i++) idle.push(await open());

  const warmup = Math.round(spec.rate * spec.warmupSeconds);
  const total = warmup + Math.round(spec.rate * spec.seconds);
  const latencies: number[] = [];
  const lateness: number[] = [];
  const statuses: Record<string, number> = {};
  let sent = 0;
  let answered = 0;
  let lastAnswer = 0;

  /** Requests due while every connection was busy and no more may be opened, in order. */
  const waiting: { i: number; due: number; noticed: number }[] = [];
  const release = (c: Connection) => {
    const next = waiting.shift();
    if (next) fire(next.i, next.due, next.noticed, c);
    else idle.push(c);
  };
  const fire = (i: number, due: number, noticed: number, c: Connection) => {
    c.send(requests[i % requests.length]!, (status) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (i >= warmup) {
        lastAnswer = nowMs();
        latencies.push(lastAnswer - noticed);
        lateness.push(noticed - due);
      }
      release(c);
      if (++answered === total) finish();
    });
  };

  const start = nowMs() + 5;
  const interval = 1000 / spec.rate;
  const tick = () => {
    const now = nowMs();
    while (sent < total && start + sent * interval <= now) {
      const i = sent++;
      const due = start + i * interval;
      const c = idle.pop();
      if (c) fire(i, due, now, c);
      else if (all.length < MAX_CONNECTIONS) void open().then((fresh) => fire(i, due, now, fresh), onError);
      else waiting.push({ i, due, noticed: now });
    }
    if (sent < total) setTimeout(tick, Math.max(0, start + sent * interval - nowMs()));
  };
  setTimeout(tick, 5);
  await Promise.race([finished, stopped]);
  for (const c of all) c.close();
  if (failure) throw failure;
  if (answered < total) throw new Error(`stopped with ${total - answered} of ${total} requests unanswered`);
  return {
    latencies,
    lateness,
    statuses,
    connections: all.length,
    answeredRate: (total - warmup) / ((lastAnswer - (start + warmup * interval)) / 1000),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runChild(main);
