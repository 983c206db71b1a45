import type { StoredFeatureValue } from '../features/feature-values.js';
import type { OnlineValue } from '../interfaces/online-store.js';
import type { Scorer, ScoringInput, ScoringOutput } from '../interfaces/scorer.js';
import { qualifyTable, type Change, type Position, type Value } from '../types.js';
import { rowFromJson } from './json-values.js';
import type { ServingContext } from './serving-context.js';
import { badRequest, noModel, ServingError } from './serving-errors.js';
import { viewId } from './watermark-board.js';

/** A request-time prediction for one entity key or one set of raw rows. */
export interface RequestPrediction {
  /** The entity key (in the order of the entity's keys); for raw rows, the key their rows carry. */
  readonly key: readonly Value[];
  /** `ok` when scored; `missing` or `expired` when a feature was absent (see {@link missing}). */
  readonly status: 'ok' | 'missing' | 'expired';
  readonly output?: readonly number[];
  readonly argmax?: number;
  readonly label?: string;
  /** Per view of the service (`name@version`): the position of the values used; null for raw rows or when absent. */
  readonly positions: Readonly<Record<string, Position | null>>;
  /** The newest of {@link positions}: what the prediction reflects; null for raw rows. */
  readonly position: Position | null;
  /** The features that kept it from being scored, `view.feature`. */
  readonly missing?: readonly string[];
}

/** A raw request: per source table (qualified or not), one row as JSON. */
export type RawRows = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/**
 * Predictions asked for in a request: by entity keys (the service's features read from the online
 * store) or by raw source rows, turned into features by the same transforms as the ingest's.
 */
export class RequestPredictor {
  private readonly scorer: Scorer;

  constructor(private readonly context: ServingContext) {
    if (!context.scorer) throw noModel();
    this.scorer = context.scorer;
  }

  /** Scores the entities with these keys (each in the order of the first view's entity keys). */
  async byKeys(keys: readonly (readonly Value[])[]): Promise<RequestPrediction[]> {
    const { inputs, store } = this.context;
    const first = inputs[0]!.view.entity.keys;
    const reads: OnlineValue[][] = await Promise.all(
      inputs.map((input) => {
        const order = input.view.entity.keys.map((k) => first.indexOf(k));
        return store.read(
          input.view,
          keys.map((key) => order.map((i) => key[i]!)),
        );
      }),
    );
    const examples: ScoringInput[] = [];
    const results: (RequestPrediction & { example?: number })[] = keys.map((key, k) => {
      const positions: Record<string, Position | null> = {};
      const missing: string[] = [];
      let status: RequestPrediction['status'] = 'ok';
      let position: Position | null = null;
      const example: StoredFeatureValue[] = [];
      inputs.forEach((input, j) => {
        const online = reads[j]![k]!;
        positions[viewId(input.view)] = online.position;
        if (online.position !== null && (position === null || online.position > position)) position = online.position;
        if (online.status !== 'ok' || online.values === null) {
          if (status === 'ok' || online.status === 'missing')
            status = online.status === 'expired' ? 'expired' : 'missing';
          missing.push(...input.names);
          return;
        }
        input.features.forEach((f, i) => {
          const value = online.values![f] ?? null;
          if (value === null) {
            status = 'missing';
            missing.push(input.names[i]!);
          } else example.push(value);
        });
      });
      if (status !== 'ok') return { key, status, positions, position, missing };
      examples.push(example);
      return { key, status, positions, position, example: examples.length - 1 };
    });
    const outputs = examples.length > 0 ? await this.scorer.score(examples) : [];
    return results.map(({ example, ...result }) =>
      example === undefined ? result : withOutput(result, outputs[example]!),
    );
  }

  /**
   * Scores raw source rows: each request item gives one row per source table of the service's views
   * (`{ "public.items": { id: 1, … } }`); each view's transform turns its table's row into features.
   * Fails with FF_SERVE_BAD_REQUEST naming `field` and the item when a table is missing or unknown,
   * or a view rejects (or filters out) its row.
   */
  async byRows(items: readonly RawRows[], field = 'body/rows'): Promise<RequestPrediction[]> {
    const { inputs, materializer } = this.context;
    const tables = [...new Set(inputs.map((i) => i.view.source))];
    const now = BigInt(Date.now()) * 1000n;
    const examples: ScoringInput[] = [];
    const partial: RequestPrediction[] = items.map((item, n) => {
      const at = `${field}/${n}`;
      const byTable = new Map<string, string>();
      for (const name of Object.keys(item)) {
        const table = qualifyTable(name);
        if (!tables.includes(table)) {
          throw badRequest(
            `${at}/${name}`,
            `is not a source table of feature service ${this.context.service!.name} (it reads ${tables.join(', ')})`,
          );
        }
        byTable.set(table, name);
      }
      const lacking = tables.filter((t) => !byTable.has(t));
      if (lacking.length > 0) {
        const readers = (t: string) =>
          inputs
            .filter((i) => i.view.source === t)
            .map((i) => `view ${i.view.name}`)
            .join(', ');
        throw badRequest(at, `lacks a row of ${lacking.map((t) => `${t} (read by ${readers(t)})`).join(' and ')}`);
      }
      const example: StoredFeatureValue[] = [];
      const missing: string[] = [];
      let key: Value[] | null = null;
      for (const input of inputs) {
        const table = input.view.source;
        const name = byTable.get(table)!;
        const schema = materializer.latestSchema(table);
        if (!schema) {
          throw new ServingError(
            'FF_SERVE_NOT_READY',
            `the columns of ${table} are not known yet (no change of it was received); retry once the ingest has read it`,
            503,
          );
        }
        const row = rowFromJson(schema, item[name]!, `${at}/${name}`);
        const change: Change = {
          table,
          op: 'c',
          key: null,
          before: null,
          after: row,
          position: 0n,
          commitPosition: 0n,
          commitTime: now,
          xid: 0,
          schemaVersion: schema.version,
        };
        const made = materializer.materializeChanges([change], [input.view]);
        const rejected = made.deadLetters[0];
        if (rejected)
          throw badRequest(
            `${at}/${name}`,
            `was rejected by view ${input.view.name} v${input.view.version}: ${rejected.error}`,
          );
        const featureRow = made.batches[0]?.rows.find((r) => r.values !== null);
        if (!featureRow)
          throw badRequest(
            `${at}/${name}`,
            `is left out by the filter of view ${input.view.name} v${input.view.version}, so it has no features`,
          );
        key ??= featureRow.key as Value[];
        input.features.forEach((f, i) => {
          const value = featureRow.values![f] ?? null;
          if (value === null) missing.push(input.names[i]!);
          else example.push(value);
        });
      }
      const positions = Object.fromEntries(inputs.map((i) => [viewId(i.view), null]));
      if (missing.length > 0) return { key: key!, status: 'missing', positions, position: null, missing };
      examples.push(example);
      return { key: key!, status: 'ok', positions, position: null };
    });
    const outputs = examples.length > 0 ? await this.scorer.score(examples) : [];
    let next = 0;
    return partial.map((p) => (p.status === 'ok' ? withOutput(p, outputs[next++]!) : p));
  }
}

function withOutput(result: RequestPrediction, out: ScoringOutput): RequestPrediction {
  return {
    ...result,
    output: Array.from(out.output),
    ...(out.argmax !== undefined ? { argmax: out.argmax } : {}),
    ...(out.label !== undefined ? { label: out.label } : {}),
  };
}
