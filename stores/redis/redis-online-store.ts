import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { entityId } from '../../framework/features/entity-key.js';
import type { FeatureRowBatch } from '../../framework/features/feature-rows.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import type { OnlineStore, OnlineValue, WatermarkPart } from '../../framework/interfaces/index.js';
import type { Position, Value } from '../../framework/types.js';
import { EntryCodec, positionHex, RowPacker } from './redis-codec.js';
import { redactUrl, type ResolvedRedisConfig } from './redis-config.js';
import { commandError, connectError } from './redis-errors.js';
import { SCRIPTS } from './redis-scripts.js';

type Arg = string | Buffer | number;

/** The scripts of redis-scripts.ts, as ioredis adds them to the client and its pipelines. */
interface ScriptCommands<R> {
  ffApply(meta: string, ...args: Arg[]): R;
  ffReadBuffer(meta: string, ...args: Arg[]): R;
  ffCheck(meta: string, token: string): R;
  ffMark(meta: string, position: string, epoch: string, token: string, fresh: string, part: string, parts: string): R;
  ffSweep(meta: string, ...args: Arg[]): R;
  ffSwept(meta: string, generation: number): R;
}
type Client = Redis & ScriptCommands<Promise<unknown>>;
type Pipeline = ScriptCommands<unknown> & { exec(): Promise<[Error | null, unknown][] | null> };

/** One view version's keys and codec. */
interface ViewKeys {
  /** `<view>@<version>`, for logs. */
  readonly name: string;
  /** The meta hash (see redis-scripts.ts). */
  readonly meta: string;
  /** The entities' key prefix: `<meta>:`, then generation and entity id. */
  readonly base: string;
  readonly codec: EntryCodec;
  /** Packs the rows of a write's script calls; used synchronously within one write, so never shared. */
  readonly packer: RowPacker;
}

const MISSING: OnlineValue = Object.freeze({ status: 'missing', values: null, position: null, commitTime: null });
/** Most entity ids one read script takes (a larger read sends several calls in its one round trip). */
const IDS_PER_SCRIPT = 10_000;

/** A glob pattern matching `text` literally (SCAN MATCH). */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * The online store in Redis, shared by every process that serves the same views and kept across
 * their restarts. Writes run a Lua script that applies rows only when newer than what is stored (see
 * redis-scripts.ts for the keys, redis-codec.ts for the bytes); a write or read is one round trip.
 */
export class RedisOnlineStore implements OnlineStore {
  private client: Client | undefined;
  private closed = false;
  /** The URL without its password: the only form logged or shown. */
  private readonly url: string;
  private readonly views = new Map<string, ViewKeys>();
  /** Per view version: the load epoch this process last saw on the server. */
  private readonly epochs = new Map<string, string>();
  /** Per view version: the token of the load this process was told to make (needsLoad said true). */
  private readonly loads = new Map<string, string>();
  /** Per view version: the background deletion of truncated generations, and the generation it reaches. */
  private readonly sweeps = new Map<string, { readonly target: number; done: Promise<void> }>();
  /** True from a connection error until the client is ready again (one log line per outage). */
  private down = false;

  constructor(
    private readonly config: ResolvedRedisConfig,
    private readonly logger?: Logger,
  ) {
    this.url = redactUrl(config.url);
  }

  async open(): Promise<void> {
    if (this.client) return;
    if (this.closed) throw new Error('the Redis online store was closed; create a new one');
    const scripts = Object.fromEntries(Object.entries(SCRIPTS).map(([name, lua]) => [name, { lua, numberOfKeys: 1 }]));
    const client = new Redis(this.config.url, {
      lazyConnect: true,
      connectTimeout: this.config.connectTimeoutMs,
      commandTimeout: this.config.commandTimeoutMs,
      // Fail fast while disconnected (a retriable error the caller's retry policy handles) rather than
      // queueing commands for an unknown time; ioredis keeps reconnecting in the background.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 10), this.config.maxReconnectDelayMs),
      connectionName: 'featureflow',
      scripts,
    }) as Client;
    let lastError: Error | undefined;
    client.on('error', (error: Error) => {
      lastError = error;
      if (this.client && !this.down) {
        this.down = true;
        this.logger?.warn(
          { url: this.url, err: error },
          'lost the connection to Redis; reconnecting in the background',
        );
      }
    });
    client.on('ready', () => {
      if (this.down) {
        this.down = false;
        this.logger?.info({ url: this.url }, 'reconnected to Redis');
      }
    });
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw connectError(lastError ?? error, this.url);
    }
    this.client = client;
    this.logger?.info({ url: this.url, prefix: this.config.prefix }, 'connected to Redis');
  }

  async needsLoad(view: FeatureView): Promise<boolean> {
    const client = this.ready();
    const keys = this.keys(view);
    const [epoch, generation, swept, loading] = (await this.run(`the load check of ${keys.name}`, () =>
      client.ffCheck(keys.meta, randomUUID()),
    )) as [string, number, number, string];
    if (swept < generation) this.sweep(keys, generation);
    if (epoch) {
      this.epochs.set(keys.name, epoch);
      this.loads.delete(keys.name);
      return false;
    }
    this.epochs.delete(keys.name);
    this.loads.set(keys.name, loading);
    return true;
  }

  async write(batches: readonly FeatureRowBatch[]): Promise<void> {
    const client = this.ready();
    const pipeline = client.pipeline() as unknown as Pipeline;
    const calls: ViewKeys[] = [];
    let total = 0;
    let packer: RowPacker | undefined;
    try {
      for (const { view, rows } of batches) {
        const keys = this.keys(view);
        packer = keys.packer;
        for (const row of rows) {
          if (row.op === 't') packer.truncate(row.commitPosition, row.position);
          else
            packer.add(
              entityId(row.key),
              row.commitPosition,
              row.position,
              row.commitTime,
              row.op === 'd' ? null : row.values,
            );
          if (packer.rows === this.config.rowsPerScript) {
            pipeline.ffApply(keys.meta, keys.base, packer.take());
            calls.push(keys);
          }
        }
        if (packer.rows > 0) {
          pipeline.ffApply(keys.meta, keys.base, packer.take());
          calls.push(keys);
        }
        total += rows.length;
      }
    } catch (error) {
      // A row that cannot be encoded: nothing of this write is sent, and the packer starts clean.
      packer?.take();
      throw error;
    }
    if (calls.length === 0) return;
    const replies = await this.run(`a write of ${total} rows`, () => pipeline.exec());
    for (let i = 0; i < calls.length; i++) {
      const [error, result] = replies?.[i] ?? [new Error('the pipeline was aborted'), null];
      if (error) throw commandError(error, `a write of ${total} rows`, this.url);
      const [, generation, swept] = result as [number, number, number];
      if (swept < generation) this.sweep(calls[i]!, generation);
    }
  }

  async setWatermark(view: FeatureView, position: Position, part?: WatermarkPart): Promise<boolean> {
    const client = this.ready();
    const keys = this.keys(view);
    const epoch = (await this.run(`setting the watermark of ${keys.name}`, () =>
      client.ffMark(
        keys.meta,
        positionHex(position),
        this.epochs.get(keys.name) ?? '',
        this.loads.get(keys.name) ?? '',
        randomUUID(),
        part ? String(part.index) : '',
        part ? String(part.count) : '',
      ),
    )) as string;
    if (epoch === '') {
      // The server no longer holds what this process loaded: the watermark would be a lie.
      this.logger?.warn(
        { url: this.url, view: keys.name },
        'Redis lost the loaded features of this view (restarted empty or flushed); needsLoad reports it, load again',
      );
      return false;
    }
    this.epochs.set(keys.name, epoch);
    this.loads.delete(keys.name);
    return true;
  }

  async watermark(view: FeatureView): Promise<Position | null> {
    const client = this.ready();
    const keys = this.keys(view);
    const hex = await this.run(`reading the watermark of ${keys.name}`, () => client.hget(keys.meta, 'wm'));
    return hex ? BigInt('0x' + hex) : null;
  }

  async read(view: FeatureView, keys: readonly (readonly Value[])[], now?: bigint): Promise<OnlineValue[]> {
    const client = this.ready();
    if (keys.length === 0) return [];
    const names = this.keys(view);
    const pipeline = client.pipeline() as unknown as Pipeline;
    for (let from = 0; from < keys.length; from += IDS_PER_SCRIPT) {
      const ids = keys.slice(from, from + IDS_PER_SCRIPT).map(entityId);
      pipeline.ffReadBuffer(names.meta, names.base, ...ids);
    }
    const what = `a read of ${keys.length} entities of ${names.name}`;
    const replies = (await this.run(what, () => pipeline.exec())) ?? [];
    const at = now ?? BigInt(Date.now()) * 1000n;
    const ttl = view.ttl;
    const out: OnlineValue[] = [];
    for (const [error, entries] of replies) {
      if (error) throw commandError(error, what, this.url);
      for (const entry of entries as (Buffer | null)[]) {
        if (!entry) {
          out.push(MISSING);
          continue;
        }
        const { position, commitTime, values } = names.codec.decode(entry);
        if (values === null) out.push({ status: 'missing', values: null, position, commitTime });
        else if (ttl !== null && at - commitTime > ttl)
          out.push({ status: 'expired', values: null, position, commitTime });
        else out.push({ status: 'ok', values, position, commitTime });
      }
    }
    if (out.length !== keys.length) throw commandError(new Error('a reply was cut short'), what, this.url);
    return out;
  }

  async count(view: FeatureView): Promise<number> {
    const client = this.ready();
    const keys = this.keys(view);
    return Number((await this.run(`counting ${keys.name}`, () => client.hget(keys.meta, 'n'))) ?? 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sweeps.values()].map((s) => s.done));
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await client.quit().catch(() => client.disconnect());
  }

  private ready(): Client {
    if (!this.client || this.closed)
      throw new Error('the Redis online store is not open: call open() first (and not after close())');
    return this.client;
  }

  private keys(view: FeatureView): ViewKeys {
    const name = `${view.name}@${view.version}`;
    let keys = this.views.get(name);
    if (!keys) {
      const meta = `${this.config.prefix}:${name}`;
      const codec = new EntryCodec(view);
      keys = { name, meta, base: `${meta}:`, codec, packer: new RowPacker(codec) };
      this.views.set(name, keys);
    }
    return keys;
  }

  private async run<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw commandError(error, what, this.url);
    }
  }

  /** Deletes, in the background, the keys of generations a truncate left behind. */
  private sweep(keys: ViewKeys, generation: number): void {
    const running = this.sweeps.get(keys.name);
    if ((running && running.target >= generation) || this.closed) return;
    const sweep = { target: generation, done: Promise.resolve() };
    sweep.done = (running?.done ?? Promise.resolve())
      .then(() => this.sweepTo(keys, generation))
      .catch((error: unknown) => {
        // Forgotten, so the next truncate or load check of the view tries again.
        if (this.sweeps.get(keys.name) === sweep) this.sweeps.delete(keys.name);
        this.logger?.warn(
          { view: keys.name, err: error },
          'deleting the keys of a truncated view failed; the next truncate or load check retries',
        );
      });
    this.sweeps.set(keys.name, sweep);
  }

  private async sweepTo(keys: ViewKeys, generation: number): Promise<void> {
    const pattern = `${globEscape(keys.base)}*`;
    let cursor = '0';
    let deleted = 0;
    do {
      const client = this.client;
      if (!client || this.closed) return;
      const [next, found] = (await client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', 1000)) as [Buffer, Buffer[]];
      cursor = next.toString();
      if (found.length > 0) deleted += (await client.ffSweep(keys.meta, keys.base, ...found)) as number;
    } while (cursor !== '0');
    await this.client?.ffSwept(keys.meta, generation);
    this.logger?.debug({ view: keys.name, generation, deleted }, 'deleted the keys of truncated generations');
  }
}
