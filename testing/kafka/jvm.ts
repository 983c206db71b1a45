import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** The classpaths of pom.xml's profiles, each fetched into its own folder. */
export type JarProfile = 'broker' | 'connect';

let cacheDir: Promise<string> | undefined;

/**
 * The folder of a profile's jars, as a `java -cp` wildcard. fetch-jars.sh fetches them with Maven on
 * the first call on a machine (a minute or so) and only prints the cache folder after that.
 */
export async function jarClasspath(profile: JarProfile): Promise<string> {
  cacheDir ??= run('bash', [join(here, 'fetch-jars.sh')], { maxBuffer: 16 << 20, timeout: 15 * 60_000 }).then(
    ({ stdout }) => stdout.trim().split('\n').at(-1)!,
    (error: Error & { stderr?: string }) => {
      cacheDir = undefined;
      const output = error.stderr?.trim() || error.message;
      throw new Error(`testing/kafka/fetch-jars.sh could not fetch the Kafka jars with Maven: ${output}`);
    },
  );
  const dir = join(await cacheDir, profile);
  if (!existsSync(join(dir, '.complete'))) {
    throw new Error(
      `the ${profile} jars are missing from ${dir}; delete that folder and run testing/kafka/fetch-jars.sh`,
    );
  }
  return join(dir, '*');
}

/** C1 only and the serial collector: a test JVM on 2 shared cores wants a fast start, not peak speed. */
export const FAST_START = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

/** `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH (Kafka 4.x needs Java 17+). */
export function javaBin(): string {
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

/** Runs a short-lived Java tool (e.g. the broker's StorageTool) to completion; rejects with its output. */
export async function runJava(
  classpath: string,
  mainClass: string,
  args: string[],
  jvmArgs: string[] = [],
): Promise<string> {
  try {
    const options = { maxBuffer: 16 << 20, timeout: 120_000 };
    const { stdout } = await run(javaBin(), [...jvmArgs, '-cp', classpath, mainClass, ...args], options);
    return stdout;
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string };
    throw new Error(
      `${mainClass} ${args[0] ?? ''} failed: ${[e.message, e.stdout, e.stderr].filter(Boolean).join('\n')}`,
    );
  }
}

/** A long-running JVM whose stdout and stderr go to a file. */
export interface Jvm {
  readonly pid: number;
  /** Resolves with the exit code (or the signal's name) when the JVM has exited. */
  readonly exited: Promise<number | string>;
  /** True once the JVM has exited. */
  hasExited(): boolean;
  /** SIGTERM (the JVM's shutdown hooks run), then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

// JVMs still running when this Node process exits (a test run that failed in set-up or was cut
// short) are killed with it and their temp dirs removed, so no broker outlives its test run.
const live = new Map<ChildProcess, string | undefined>();
let exitHookInstalled = false;

function killLiveOnExit() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [child, dir] of live) {
      child.kill('SIGKILL');
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * Starts `java <jvmArgs> -cp <classpath> <mainClass> <args>` with stdout and stderr appended to
 * `outFile`; `tempDir`, if given, is removed should this Node process exit with the JVM still running.
 */
export function spawnJvm(
  classpath: string,
  mainClass: string,
  args: string[],
  jvmArgs: string[],
  outFile: string,
  tempDir?: string,
): Jvm {
  const out = openSync(outFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(javaBin(), [...jvmArgs, '-cp', classpath, mainClass, ...args], { stdio: ['ignore', out, out] });
  } finally {
    closeSync(out);
  }
  killLiveOnExit();
  live.set(child, tempDir);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (error) => {
      done = true;
      live.delete(child);
      resolve(`spawn error: ${error.message}`);
    });
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return {
    pid: child.pid ?? -1,
    exited,
    hasExited: () => done,
    async stop(graceMs = 10_000) {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The last `lines` lines of a log file, for error messages ('' when it does not exist). */
export function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * A log4j2 `.properties` configuration writing everything at `level` to `file` (so the JVM's log goes
 * to its temp dir, not the test runner's stdout). The `.properties` format needs no extra jar.
 */
export function log4jProperties(file: string, level = 'INFO'): string {
  return [
    'status = warn',
    'appender.file.type = File',
    'appender.file.name = file',
    `appender.file.fileName = ${file}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    `rootLogger.level = ${level}`,
    'rootLogger.appenderRef.file.ref = file',
    '',
  ].join('\n');
}

/** `key=value` lines of a Java properties file (a backslash in a value is an escape there: doubled). */
export function propertiesFile(props: Record<string, string | number | boolean>): string {
  const escape = (v: string | number | boolean) => String(v).replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
  return `${Object.entries(props)
    .map(([k, v]) => `${k}=${escape(v)}`)
    .join('\n')}\n`;
}

/** The JVM's resident set size in bytes (Linux /proc), or undefined once it has exited. */
export function rssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
