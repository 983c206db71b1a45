import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { FeatureflowError } from '../../framework/errors.js';
import { formatMicros } from '../../framework/features/instant.js';
import type { Prediction, PredictionSink } from '../../framework/interfaces/prediction-sink.js';
import { formatPosition, parsePosition, type Position, type Value } from '../../framework/types.js';
import { encodeValue } from '../../framework/value-json.js';
import type { PredictionColumn, ResolvedPostgresPredictionsConfig } from './postgres-predictions-config.js';
import { isConnectionError, translatePredictionsError } from './postgres-predictions-errors.js';
import {
  createTableSql,
  keyTypeOf,
  readLayout,
  upsertSql,
  watermarkSql,
  watermarksDdl,
  watermarksTable,
  type PositionType,
  type TableLayout,
} from './prediction-table.js';

/** Most milliseconds one statement may take before the write fails as unreachable. */
const QUERY_TIMEOUT_MS = 30_000;

/** The table's layout and the statement written through it. */
interface Writer {
  readonly layout: TableLayout;
  readonly sql: string;
  /** Name of the prepared statement (one per text on a connection). */
  readonly name: string;
}

/**
 * Each entity's newest prediction in a PostgreSQL table, next to the application's data (the way the
 * seed's example writes the recognised digit next to the image). A write is one statement, one round
 * trip: a multi-row upsert keyed by the entity, guarded by position (an older prediction never
 * overwrites a newer one; a replay changes nothing), and the table's watermark in
 * `featureflow_prediction_watermarks` moved in the same transaction.
 */
export class PostgresPredictionSink implements PredictionSink {
  private client: pg.Client | undefined;
  private writer: Writer | null = null;
  private opened = false;
  private closed = false;
  /** The write in progress: writes run one at a time on the one connection. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly server: string;

  constructor(
    private readonly config: ResolvedPostgresPredictionsConfig,
    private readonly logger?: Logger,
  ) {
    this.server = describeServer(config.connectionString);
  }

  async open(): Promise<void> {
    if (this.opened) return;
    if (this.closed) throw new Error('the PostgreSQL prediction sink is closed');
    const client = await this.connection('opening the prediction table');
    await this.run('opening the prediction table', async () => {
      await client.query(watermarksDdl(this.config.table)).catch(ignoreConcurrentCreate);
      const layout = await readLayout(client, this.config);
      this.writer = layout && writerOf(this.config, layout);
    });
    this.opened = true;
    this.logger?.info(
      { table: this.config.table, server: this.server, exists: this.writer !== null },
      'prediction table ready',
    );
  }

  write(predictions: readonly Prediction[], through: Position | null): Promise<void> {
    const run = this.queue.then(() => this.writeNow(predictions, through));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeNow(predictions: readonly Prediction[], through: Position | null): Promise<void> {
    if (!this.opened || this.closed)
      throw new Error(
        this.closed
          ? 'the PostgreSQL prediction sink is closed'
          : 'the PostgreSQL prediction sink is not open; call open() first',
      );
    const what = `writing ${predictions.length} predictions to ${this.config.table}`;
    const client = await this.connection(what);
    await this.run(what, async () => {
      if (predictions.length > 0 && this.writer === null) await this.create(client, predictions[0]!.key);
      const watermark = through === null ? null : formatPosition(BigInt(through));
      if (predictions.length === 0) {
        if (watermark !== null) await client.query(watermarkSql(this.config), [this.config.table, watermark]);
        return;
      }
      const { layout, sql, name } = this.writer!;
      const values = [...columnsOf(predictions, layout, this.config.keyColumns.length), this.config.table, watermark];
      await client.query({ name, text: sql, values });
    });
  }

  async watermark(): Promise<Position | null> {
    const client = await this.connection('reading the watermark');
    return this.run('reading the watermark', async () => {
      const { rows } = await client.query<{ position: string }>(
        `SELECT position::text AS position FROM ${watermarksTable(this.config.table)} WHERE table_name = $1`,
        [this.config.table],
      );
      return rows.length === 0 ? null : parsePosition(rows[0]!.position);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /** Creates the table in the default layout (key types from the config, else from this key) and reads it back. */
  private async create(client: pg.Client, key: readonly Value[]): Promise<void> {
    const keyColumns = this.config.keyColumns;
    if (key.length !== keyColumns.length) {
      throw new FeatureflowError(
        'FF_CONFIG_INVALID',
        `the predictions' entity key has ${key.length} values, but postgresPredictions({ keyColumns }) names ${keyColumns.length} columns ` +
          `(${keyColumns.map((k) => k.name).join(', ')}) for ${this.config.table}; name one column per key of the entity, in its order`,
      );
    }
    await client
      .query(
        createTableSql(
          this.config,
          keyColumns.map((k, i) => k.type ?? keyTypeOf(key[i]!)),
        ),
      )
      .catch(ignoreConcurrentCreate);
    const layout = (await readLayout(client, this.config))!;
    this.writer = writerOf(this.config, layout);
    this.logger?.info({ table: this.config.table }, 'prediction table created');
  }

  /** The connected client, connecting (again, after a lost connection) when there is none. */
  private async connection(what: string): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      ...(this.config.connectionString ? { connectionString: this.config.connectionString } : {}),
      application_name: 'featureflow',
      connectionTimeoutMillis: 10_000,
      // A server that stops answering fails the write (retriably) instead of holding the scoring loop;
      // retrying is safe: a write that did commit is not applied twice (the upsert is position-guarded).
      query_timeout: QUERY_TIMEOUT_MS,
      options: '-c TimeZone=UTC',
    });
    // An idle client whose server goes away emits 'error': forget it, the next write reconnects.
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
    });
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw translatePredictionsError(error, what, this.config.table, this.server);
    }
    this.client = client;
    return client;
  }

  /** Runs `work` on the client; a lost connection is dropped (the next call reconnects), errors are coded. */
  private async run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isConnectionError(error)) {
        const client = this.client;
        this.client = undefined;
        await client?.end().catch(() => undefined);
      }
      throw translatePredictionsError(error, what, this.config.table, this.server);
    }
  }
}

function writerOf(config: ResolvedPostgresPredictionsConfig, layout: TableLayout): Writer {
  const sql = upsertSql(config, layout);
  return { layout, sql, name: `ff_predictions_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}` };
}

/** Two processes creating the same table at once: one of them meets a unique violation on the catalog. */
function ignoreConcurrentCreate(error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== '23505' && code !== '42P07') throw error;
}

/** The write's parameters: one text array per key column and per column of the layout. */
function columnsOf(predictions: readonly Prediction[], layout: TableLayout, keyCount: number): (string | null)[][] {
  const out: (string | null)[][] = [];
  for (let k = 0; k < keyCount; k++) out.push(predictions.map((p) => keyText(p.key[k] ?? null)));
  for (const c of layout.columns) out.push(predictions.map((p) => fieldText(p, c.field, layout.positionType)));
  return out;
}

/** One field of a prediction as PostgreSQL reads it from text (cast to the column's type). */
function fieldText(p: Prediction, field: PredictionColumn, positionType: PositionType): string | null {
  switch (field) {
    case 'model':
      return p.model;
    case 'model_version':
      return p.modelVersion;
    case 'label':
      return p.label ?? null;
    case 'argmax':
      return p.argmax === undefined ? null : String(p.argmax);
    case 'probability': {
      // The score of the chosen class; a single output (a sigmoid) is its own probability.
      const score = p.argmax !== undefined ? p.output[p.argmax] : p.output.length === 1 ? p.output[0] : undefined;
      return score === undefined ? null : numberText(score);
    }
    case 'output':
      return '{' + p.output.map(numberText).join(',') + '}';
    case 'position':
      return positionType === 'pg_lsn' ? formatPosition(BigInt(p.position)) : BigInt(p.position).toString();
    case 'commit_time':
      return formatMicros(p.commitTime);
    case 'predicted_at':
      return formatMicros(BigInt(Math.round(p.predictedAt * 1000)));
    case 'received_ms':
      return numberText(p.latency.receivedMs);
    case 'features_ms':
      return numberText(p.latency.featuresMs);
    case 'scored_ms':
      return numberText(p.latency.scoredMs);
  }
}

/** A number as PostgreSQL's float input reads it (NaN and infinities by name; shortest exact decimal). */
function numberText(n: number): string {
  if (Number.isFinite(n)) return String(n);
  return Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity';
}

/** A key value as PostgreSQL reads it from text: bytes in hex (`\x…`), arrays as their JSON text. */
function keyText(v: Value): string | null {
  if (v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return numberText(v);
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  return encodeValue(v);
}

/** `host:port/database` of the connection settings, for logs and messages: never the password or the whole string. */
function describeServer(connectionString: string | undefined): string {
  let url: URL | undefined;
  try {
    url = connectionString ? new URL(connectionString) : undefined;
  } catch {
    url = undefined;
  }
  const host = url?.hostname || process.env.PGHOST || 'localhost';
  const port = url?.port || process.env.PGPORT || '5432';
  const database =
    url?.pathname.replace(/^\//, '') ||
    process.env.PGDATABASE ||
    decodeURIComponent(url?.username ?? '') ||
    process.env.PGUSER ||
    'postgres';
  return `${host}:${port}/${database}`;
}
