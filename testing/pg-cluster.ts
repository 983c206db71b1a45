import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, chownSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Options of a throwaway PostgreSQL cluster. */
export interface PgClusterOptions {
  /** `wal_level` of the cluster. Default `logical`. */
  walLevel?: 'logical' | 'replica';
  /** Password of the `postgres` superuser (TCP connections use scram-sha-256). Default `postgres`. */
  password?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
}

/** A running throwaway cluster: `initdb` into a temp directory, a free port on 127.0.0.1. */
export interface PgCluster {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string;
  /** Restarts the server (same data, same port). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Finds the directory holding `initdb`, preferring Debian's versioned layout. */
export function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(root, versions[0]!, 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl) were not found; install them with `apt-get install -y postgresql` ' +
      '(or run `bash .ci/run`, which does), or set DATABASE_URL to a server with wal_level=logical',
  );
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Starts a throwaway PostgreSQL cluster. `initdb` and `postgres` refuse to run as root, so as root the
 * cluster runs as the `postgres` OS user with a data directory that user owns.
 */
export async function startPgCluster(options: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  const asRoot = userInfo().uid === 0;
  const base = mkdtempSync(join(tmpdir(), 'featureflow-pg-'));
  const dataDir = join(base, 'data');
  const password = options.password ?? 'postgres';
  const pwfile = join(base, 'pw');
  writeFileSync(pwfile, password + '\n');
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']).catch(() => {
      throw new Error(
        'running as root needs the `postgres` OS user to own the test cluster; install the postgresql package (it creates the user)',
      );
    });
    uid = Number(stdout.trim());
    gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(base, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const exec = (cmd: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), args);

  await exec('initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    `--pwfile=${pwfile}`,
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  const port = await freePort();
  const settings: Record<string, string | number> = {
    wal_level: options.walLevel ?? 'logical',
    port,
    listen_addresses: '127.0.0.1',
    unix_socket_directories: base,
    // fsync=off makes commits cheap; synchronous_commit stays on so a commit's WAL is flushed (and so
    // visible to walsenders) at once, not up to wal_writer_delay later.
    fsync: 'off',
    full_page_writes: 'off',
    max_wal_senders: 20,
    // Each test keeps its own slot (an idle slot only holds WAL back in this throwaway cluster): the
    // suite makes about 100, and at 100 the last test to make one found none left.
    max_replication_slots: 200,
    max_connections: 200,
    wal_sender_timeout: '60s',
    TimeZone: 'UTC',
    ...options.settings,
  };
  const serverOpts = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const logFile = join(base, 'server.log');
  const start = () => exec('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', serverOpts, '-w', '-t', '60', 'start']);
  const stop = (mode: string) => exec('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
  await start();
  let stopped = false;
  return {
    port,
    host: '127.0.0.1',
    dataDir,
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    async restart() {
      await stop('fast');
      await start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await stop('immediate').catch(() => undefined);
      if (existsSync(base) && statSync(base).isDirectory()) rmSync(base, { recursive: true, force: true });
    },
  };
}
