import type { ContainerModule } from 'inversify';
import { FeatureflowError } from './errors.js';
import type { FeatureDefinitions } from './features/feature-registry.js';
import type { FeatureService } from './features/feature-service.js';
import type {
  ChangeLog,
  ChangeLogState,
  ChangeLogTableStats,
  FeatureViewStatus,
  OfflineStore,
} from './interfaces/index.js';

/**
 * An adapter as the user's config composes it (Kysely's `dialect: new PostgresDialect(…)` is the
 * model): each adapter folder's factory (`postgres({ … })`, `duckdb({ … })`) validates its own
 * settings and returns one of these, with the container module that binds its classes.
 */
export interface Adapter<K extends string> {
  readonly kind: K;
  /** The adapter's name, e.g. `postgres`. */
  readonly name: string;
  /** Binds the adapter's implementations (and its third-party resources) into the container. */
  readonly module: ContainerModule;
}

/** Where changes come from. */
export interface SourceAdapter extends Adapter<'source'> {
  /** The tables the source captures, where its settings name them: checked against the change log before the source touches its server. */
  readonly tables?: readonly string[];
  /** The same source capturing other tables (the CLI's `--tables`). */
  withTables(tables: readonly string[]): SourceAdapter;
}

/** What `featureflow status` learns from the store without writing. */
export interface StoreInspection {
  readonly state: ChangeLogState;
  readonly tables: readonly ChangeLogTableStats[];
  readonly views: readonly FeatureViewStatus[];
}

/** Where the change log and the feature history are kept. */
export interface StoreAdapter extends Adapter<'store'> {
  /** Where the store is, for people (a file path). */
  readonly location: string;
  /** The file a running ingest publishes its progress in, for `status` (the store itself is locked then). */
  readonly progressFile: string;
  /** Reads progress and counts without writing; FF_STORE_LOCKED-like errors while an ingest holds it. */
  inspect(): Promise<StoreInspection>;
  /** A reader of the feature history (exports, training sets) outside an ingesting process; close it when done. */
  openReader(definitions: FeatureDefinitions): Promise<OfflineStore>;
  /** Offered by a store that one process holds, so that other processes can read it while it ingests; after the log opens, closed before it closes. */
  shareReads?(log: ChangeLog): Promise<{ close(): Promise<void> }>;
}

/** Where the latest feature values are served from (`memory()`, `redis({ url })`); its module binds `TOKENS.OnlineStore`. */
export interface OnlineAdapter extends Adapter<'online'> {
  /**
   * Every process reaches the same store (Redis), so processes sharing the entities of a bus between
   * processes answer for all of them; an in-process store (memory) holds what its own process wrote.
   */
  readonly shared: boolean;
}

/** A model scoring a feature service (`tfjs({ path, service })`); its module binds `TOKENS.Scorer`. */
export interface ScorerAdapter extends Adapter<'scorer'> {
  /** The feature service whose features the model takes. */
  readonly service: FeatureService;
}

/** A place predictions are written to besides the store's own table (`postgresPredictions({ table })`); its module adds a `TOKENS.PredictionSink`. */
export interface PredictionsAdapter extends Adapter<'predictions'> {}

/**
 * Where the change log's committed changes are published besides the store (`debezium({ brokers })`:
 * Debezium-compatible records on Kafka); its module binds `TOKENS.ChangePublisher`.
 */
export interface PublishAdapter extends Adapter<'publish'> {}

/**
 * The bus feature rows travel on from the ingest to the serving processes (`kafkaBus({ brokers })`);
 * its module binds `TOKENS.ChangeBus`. Default: in-process (`featureflow serve` ingests and serves in
 * one process).
 */
export interface BusAdapter extends Adapter<'bus'> {}

/** The HTTP service of `featureflow serve`. */
export interface ServeConfig {
  /** Address to listen on. Default `127.0.0.1` (only this machine); `0.0.0.0` to serve others. */
  host?: string;
  /** Port. Default 8080 (0: any free port). */
  port?: number;
  /** Bearer token every request must carry (`Authorization: Bearer …`). Default none. Never logged. */
  token?: string;
  /** Largest request body in bytes (larger: 413). Default 1 MiB. */
  bodyLimitBytes?: number;
}

/** featureflow's configuration, as written in `featureflow.config.ts` with {@link defineConfig}. */
export interface FeatureflowConfig {
  /** Where to read changes from, e.g. `postgres({ tables: ['public.orders'] })`. */
  source: SourceAdapter;
  /** The offline store (change log, feature history). Default `duckdb()`. */
  store?: StoreAdapter;
  /** Ingestion tuning. */
  ingest?: IngestConfig;
  /** Log level: `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`. Default `info` (env `FEATUREFLOW_LOG_LEVEL`). */
  logLevel?: string;
  /** Feature views and services whose history tables ingest keeps current. Default none. */
  features?: FeatureDefinitions;
  /** The online store `featureflow serve` keeps current. Default `memory()`. */
  online?: OnlineAdapter;
  /** The model `featureflow serve` scores every changed entity of its feature service with. Default none. */
  model?: ScorerAdapter;
  /** Further places predictions are written to (the store keeps its own table). Default none. */
  predictions?: readonly PredictionsAdapter[];
  /** The HTTP service of `featureflow serve`. */
  serve?: ServeConfig;
  /** Publishes every committed change (at least once) after the store holds it, e.g. `debezium({ brokers })`. Default none. */
  publish?: PublishAdapter;
  /**
   * Carries feature rows from `featureflow ingest` to `featureflow serve` processes, e.g.
   * `kafkaBus({ brokers })` to serve from several processes. Default: in-process (`serve` ingests itself).
   */
  bus?: BusAdapter;
}

/** Ingestion tuning, for every source and store. */
export interface IngestConfig {
  /** Most changes held in one batch before it is applied (large transactions are cut). Default 10 000. */
  batchSize?: number;
  /**
   * Rows per batch during a snapshot; a batch of wide rows ends sooner, at about 1 MB. Default 8 192
   * (four of DuckDB's 2 048-row vectors).
   */
  snapshotBatchSize?: number;
  /** Seconds between status replies to the source and heartbeats while idle. Default 5. */
  heartbeatSeconds?: number;
  /** Most seconds between reconnect attempts after the connection drops. Default 30. */
  maxBackoffSeconds?: number;
  /**
   * Least milliseconds between two commits of streamed changes to the store while following (group
   * commit: what arrives meanwhile commits together; serving online does not wait for it). 0 commits
   * as soon as the previous commit ends (what arrives during a commit still commits together).
   * Default: 250 where the same process serves the changes before their commit (`serve` on its
   * in-process bus, without a publisher: each commit has a fixed cost, and at 1000 single-row
   * transactions/s `serve` took ~20% less CPU than at 50); 30 on a bus between processes (Kafka),
   * without a publisher: back-to-back commits kept a two-core machine busy whatever the rate, at no
   * gain in commit → prediction; else 0 (`ingest` alone, whose changes are visible once committed;
   * a publisher, whose sends follow the commit).
   */
  commitIntervalMs?: number;
}

/** The configuration with every default filled in; frozen. */
export interface ResolvedConfig {
  readonly source: SourceAdapter;
  readonly store: StoreAdapter;
  /** `commitIntervalMs` stays undefined unless set: its default depends on what runs (see {@link IngestConfig}). */
  readonly ingest: Readonly<Required<Omit<IngestConfig, 'commitIntervalMs'>>> & { readonly commitIntervalMs?: number };
  readonly logLevel: string;
  readonly features: FeatureDefinitions;
  readonly online: OnlineAdapter;
  readonly model: ScorerAdapter | null;
  readonly predictions: readonly PredictionsAdapter[];
  readonly serve: Readonly<Required<Omit<ServeConfig, 'token'>>> & { readonly token?: string };
  readonly publish: PublishAdapter | null;
  readonly bus: BusAdapter | null;
}

/** Identity function that gives `featureflow.config.ts` its types. */
export function defineConfig(config: FeatureflowConfig): FeatureflowConfig {
  return config;
}

/** What the composition root supplies: the adapter used when the config names none. */
export interface ConfigDefaults {
  readonly store: () => StoreAdapter;
  readonly online: () => OnlineAdapter;
}

function isAdapter(value: unknown, kind: string): boolean {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === kind && 'module' in value
  );
}

/**
 * The configuration shape before adapters owned their settings (`source: { tables }`, `store: { path }`),
 * refused with the shape to write instead.
 */
function earlierShape(config: FeatureflowConfig): string[] {
  const problems: string[] = [];
  const source = config.source as unknown;
  if (source && typeof source === 'object' && !isAdapter(source, 'source')) {
    const fields = Object.keys(source).join(', ');
    problems.push(
      `source is now an adapter: write source: postgres({ ${fields} }) (import { postgres } from 'featureflow'), ` +
        'e.g. defineConfig({ source: postgres({ tables: ["public.orders"] }), store: duckdb({ path: ".featureflow/featureflow.duckdb" }) })',
    );
  }
  const store = config.store as unknown;
  if (store && typeof store === 'object' && !isAdapter(store, 'store')) {
    problems.push(
      `store is now an adapter: write store: duckdb({ ${Object.keys(store).join(', ')} }) (import { duckdb } from 'featureflow')`,
    );
  }
  return problems;
}

/**
 * Validates a configuration (the adapters validated their own settings when made), fills defaults,
 * and freezes the result. Every problem is listed at once, with its fix.
 */
export function resolveConfig(
  config: FeatureflowConfig,
  defaults: ConfigDefaults,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedConfig {
  const problems = earlierShape(config);
  if (problems.length === 0 && !isAdapter(config?.source, 'source')) {
    problems.push("source must be a source adapter, e.g. source: postgres({ tables: ['public.orders'] })");
  }
  const ingest = {
    batchSize: config?.ingest?.batchSize ?? 10_000,
    snapshotBatchSize: config?.ingest?.snapshotBatchSize ?? 8_192,
    heartbeatSeconds: config?.ingest?.heartbeatSeconds ?? 5,
    maxBackoffSeconds: config?.ingest?.maxBackoffSeconds ?? 30,
    commitIntervalMs: config?.ingest?.commitIntervalMs,
  };
  for (const [k, v] of Object.entries(ingest)) {
    if (k === 'commitIntervalMs' && v === undefined) continue;
    const least = k === 'commitIntervalMs' ? 'a number ≥ 0' : 'a positive number';
    if (!(typeof v === 'number' && (v > 0 || (v === 0 && k === 'commitIntervalMs')) && Number.isFinite(v)))
      problems.push(`ingest.${k} must be ${least}, got ${String(v)}`);
  }
  if (config?.online !== undefined && !isAdapter(config.online, 'online'))
    problems.push('online must be an online store adapter: memory() or redis({ url })');
  if (config?.model != null && !isAdapter(config.model, 'scorer'))
    problems.push('model must be a model adapter, e.g. tfjs({ path, service })');
  for (const p of config?.predictions ?? [])
    if (!isAdapter(p, 'predictions'))
      problems.push('predictions must list prediction sinks, e.g. postgresPredictions({ table })');
  if (config?.publish != null && !isAdapter(config.publish, 'publish'))
    problems.push('publish must be a change publisher, e.g. debezium({ brokers: ["localhost:9092"] })');
  if (config?.bus != null && !isAdapter(config.bus, 'bus'))
    problems.push('bus must be a change bus, e.g. kafkaBus({ brokers: ["localhost:9092"] })');
  const serve = {
    host: config?.serve?.host ?? '127.0.0.1',
    port: config?.serve?.port ?? 8080,
    bodyLimitBytes: config?.serve?.bodyLimitBytes ?? 1024 * 1024,
    ...(config?.serve?.token ? { token: config.serve.token } : {}),
  };
  if (!(Number.isInteger(serve.port) && serve.port >= 0 && serve.port < 65536))
    problems.push(`serve.port must be a port number, got ${String(serve.port)}`);
  if (!(Number.isInteger(serve.bodyLimitBytes) && serve.bodyLimitBytes > 0))
    problems.push(`serve.bodyLimitBytes must be a positive integer, got ${String(serve.bodyLimitBytes)}`);
  if (problems.length > 0) {
    throw new FeatureflowError(
      'FF_CONFIG_INVALID',
      `invalid featureflow configuration:\n  - ${problems.join('\n  - ')}`,
    );
  }
  return Object.freeze({
    source: config.source,
    store: config.store ?? defaults.store(),
    ingest: Object.freeze(ingest),
    logLevel: config.logLevel ?? env.FEATUREFLOW_LOG_LEVEL ?? 'info',
    features: config.features ?? {},
    online: config.online ?? defaults.online(),
    model: config.model ?? null,
    predictions: Object.freeze([...(config.predictions ?? [])]),
    serve: Object.freeze(serve),
    publish: config.publish ?? null,
    bus: config.bus ?? null,
  });
}
