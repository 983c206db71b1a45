import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './pg-cluster.js';

/** Options of a throwaway `redis-server`. */
export interface RedisServerOptions {
  /** A password every client must give (`requirepass`). Default none. */
  password?: string;
}

/** A running throwaway `redis-server`: no persistence, a free port on 127.0.0.1. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, with `:<password>@` when the server has one. */
  readonly url: string;
  /** Kills the server (as a crash would) and starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** Kills the server (as a crash would), leaving the port free for {@link start}. */
  kill(): Promise<void>;
  /** Starts the server again on the same port, empty, after {@link kill}. */
  start(): Promise<void>;
  /** Stops the server (SIGKILL: nothing is saved anyway) and removes its directory; idempotent. */
  stop(): Promise<void>;
}

/** How long a start may take before it fails. */
const READY_MS = 10_000;

/** True when `PING` on 127.0.0.1:`port` answers `+PONG`. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      // A server with a password answers -NOAUTH: it is up all the same.
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Starts `redis-server` (Debian's `redis-server` package) on a free port of 127.0.0.1 with no RDB
 * snapshots and no AOF, in a temporary directory, and waits until it answers PING.
 */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'featureflow-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let stopped = false;

  const start = async () => {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--protected-mode',
      'no',
      '--logfile',
      join(dir, 'redis.log'),
      ...(options.password ? ['--requirepass', options.password] : []),
    ];
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    const failed = new Promise<never>((_, reject) => {
      started.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'ENOENT'
            ? new Error('redis-server was not found; install it with `apt-get install -y redis-server`')
            : error,
        ),
      );
      started.once('exit', (code, signal) =>
        reject(
          new Error(`redis-server on port ${port} exited at start (${signal ?? code}); see ${join(dir, 'redis.log')}`),
        ),
      );
    });
    failed.catch(() => undefined);
    const deadline = Date.now() + READY_MS;
    while (!(await Promise.race([ping(port), failed]))) {
      if (Date.now() > deadline) {
        started.kill('SIGKILL');
        throw new Error(
          `redis-server on port ${port} did not answer PING within ${READY_MS / 1000} s; see ${join(dir, 'redis.log')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running) return;
    running.removeAllListeners('exit');
    if (running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
    await exited(running);
  };

  await start();
  return {
    port,
    url: `redis://${options.password ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    async restart() {
      await kill();
      await start();
    },
    kill,
    async start() {
      if (child) throw new Error(`redis-server on port ${port} is running; kill() it first`);
      await start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
