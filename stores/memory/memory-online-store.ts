import type { Logger } from 'pino';
import { entityId } from '../../framework/features/entity-key.js';
import type { FeatureRow, FeatureRowBatch } from '../../framework/features/feature-rows.js';
import type { FeatureType } from '../../framework/features/feature-types.js';
import type { StoredFeatureValue } from '../../framework/features/feature-values.js';
import type { FeatureView } from '../../framework/features/feature-view.js';
import type { OnlineStore, OnlineValue, WatermarkPart } from '../../framework/interfaces/index.js';
import type { Position, Value } from '../../framework/types.js';
import type { ResolvedMemoryConfig } from './memory-config.js';

/** How one feature is kept: `width` elements per entity in one typed array per view, or strings in an array. */
type Column =
  | {
      readonly kind: 'number';
      readonly width: number;
      readonly tensor: boolean;
      data: Float32Array | Float64Array | Int32Array;
    }
  | { readonly kind: 'bigint'; data: BigInt64Array }
  | { readonly kind: 'bool'; data: Uint8Array }
  | { readonly kind: 'text'; data: (string | null)[] };

/** Slot states. */
const VALUES = 1;
const DELETED = 2;

const POSITION_LIMIT = 1n << 64n;
const MISSING: OnlineValue = Object.freeze({ status: 'missing', values: null, position: null, commitTime: null });

function column(type: FeatureType, capacity: number): Column {
  const width = type.kind === 'tensor' ? type.size : 1;
  switch (type.dtype) {
    case 'float32':
      return { kind: 'number', width, tensor: type.kind === 'tensor', data: new Float32Array(capacity * width) };
    case 'float64':
      return { kind: 'number', width, tensor: type.kind === 'tensor', data: new Float64Array(capacity * width) };
    case 'int32':
      return { kind: 'number', width, tensor: type.kind === 'tensor', data: new Int32Array(capacity * width) };
    case 'int64':
    case 'timestamp':
      return { kind: 'bigint', data: new BigInt64Array(capacity) };
    case 'bool':
      return { kind: 'bool', data: new Uint8Array(capacity) };
    case 'text':
      return { kind: 'text', data: [] };
  }
}

function grown<T extends Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array | Uint8Array>(
  array: T,
  length: number,
): T {
  const out = new (array.constructor as new (length: number) => T)(length);
  out.set(array as never);
  return out;
}

/**
 * One view version's entities. Each entity has a slot: its position, commit time, state and null
 * bits in typed arrays, and its features in one typed array per feature (strings in an array), so an
 * entity costs its Map entry plus its bytes rather than a JavaScript object per value. A deleted
 * entity keeps its slot as a tombstone (its position guards against replayed older rows).
 */
class ViewTable {
  readonly ids = new Map<string, number>();
  /** Entities with values (not tombstones). */
  count = 0;
  private capacity: number;
  private positions: BigUint64Array;
  private commits: BigUint64Array;
  private times: BigInt64Array;
  private states: Uint8Array;
  private nulls: Uint8Array;
  private readonly nullBytes: number;
  private readonly columns: Column[];

  constructor(
    private readonly view: FeatureView,
    capacity: number,
  ) {
    const types = Object.values(view.features);
    this.capacity = capacity;
    this.nullBytes = Math.ceil(types.length / 8);
    this.positions = new BigUint64Array(capacity);
    this.commits = new BigUint64Array(capacity);
    this.times = new BigInt64Array(capacity);
    this.states = new Uint8Array(capacity);
    this.nulls = new Uint8Array(capacity * this.nullBytes);
    this.columns = types.map((t) => column(t, capacity));
  }

  /** Applies one value or delete row when it is newer than what the entity holds. */
  apply(row: FeatureRow): void {
    const id = entityId(row.key);
    let slot = this.ids.get(id);
    // Commit order, then change order (compareRows): a change position alone is not commit order.
    if (slot !== undefined) {
      const commit = this.commits[slot]!;
      if (row.commitPosition < commit || (row.commitPosition === commit && row.position <= this.positions[slot]!))
        return;
    }
    if (slot === undefined) {
      // Also for a delete of an unknown entity: its tombstone guards against an older row replayed later.
      slot = this.ids.size;
      if (slot === this.capacity) this.grow();
      this.ids.set(id, slot);
    }
    const had = this.states[slot] === VALUES;
    this.positions[slot] = row.position;
    this.commits[slot] = row.commitPosition;
    this.times[slot] = row.commitTime;
    if (row.op === 'd' || row.values === null) {
      this.states[slot] = DELETED;
      if (had) this.count--;
      return;
    }
    this.states[slot] = VALUES;
    if (!had) this.count++;
    this.store(slot, row.values);
  }

  /** What the store knows of the entity with this id. */
  read(id: string, now: bigint): OnlineValue {
    const slot = this.ids.get(id);
    if (slot === undefined) return MISSING;
    const position = this.positions[slot]!;
    const commitTime = this.times[slot]!;
    if (this.states[slot] !== VALUES) return { status: 'missing', values: null, position, commitTime };
    if (this.view.ttl !== null && now - commitTime > this.view.ttl)
      return { status: 'expired', values: null, position, commitTime };
    return { status: 'ok', values: this.load(slot), position, commitTime };
  }

  private store(slot: number, values: readonly StoredFeatureValue[]): void {
    if (values.length !== this.columns.length) {
      throw new TypeError(
        `feature view ${this.view.name}@${this.view.version} has ${this.columns.length} features, a row gave ${values.length} values`,
      );
    }
    const nullBase = slot * this.nullBytes;
    this.nulls.fill(0, nullBase, nullBase + this.nullBytes);
    for (let f = 0; f < values.length; f++) {
      const value = values[f]!;
      const c = this.columns[f]!;
      if (value === null) {
        this.nulls[nullBase + (f >> 3)]! |= 1 << (f & 7);
        if (c.kind === 'text') c.data[slot] = null;
        continue;
      }
      switch (c.kind) {
        case 'number':
          if (c.tensor) {
            const items = value as Float32Array | Float64Array | Int32Array;
            if (items.length !== c.width) {
              throw new TypeError(
                `feature ${Object.keys(this.view.features)[f]} of ${this.view.name}@${this.view.version} takes ${c.width} elements, got ${items.length}`,
              );
            }
            c.data.set(items, slot * c.width);
          } else c.data[slot] = value as number;
          break;
        case 'bigint':
          c.data[slot] = value as bigint;
          break;
        case 'bool':
          c.data[slot] = value ? 1 : 0;
          break;
        case 'text':
          c.data[slot] = value as string;
          break;
      }
    }
  }

  private load(slot: number): StoredFeatureValue[] {
    const out = new Array<StoredFeatureValue>(this.columns.length);
    const nullBase = slot * this.nullBytes;
    for (let f = 0; f < this.columns.length; f++) {
      const c = this.columns[f]!;
      if (this.nulls[nullBase + (f >> 3)]! & (1 << (f & 7))) out[f] = null;
      else if (c.kind === 'number')
        out[f] = c.tensor ? c.data.slice(slot * c.width, (slot + 1) * c.width) : c.data[slot]!;
      else if (c.kind === 'bool') out[f] = c.data[slot] === 1;
      else out[f] = c.data[slot]!;
    }
    return out;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    this.positions = grown(this.positions, capacity);
    this.commits = grown(this.commits, capacity);
    this.times = grown(this.times, capacity);
    this.states = grown(this.states, capacity);
    this.nulls = grown(this.nulls, capacity * this.nullBytes);
    for (const c of this.columns) {
      if (c.kind === 'number') c.data = grown(c.data, capacity * c.width);
      else if (c.kind === 'bigint') c.data = grown(c.data, capacity);
      else if (c.kind === 'bool') c.data = grown(c.data, capacity);
    }
    this.capacity = capacity;
  }
}

/** One view version: its entities, last truncate and watermark. */
interface ViewState {
  table: ViewTable;
  /** The last truncate (its commit and change positions); rows at or before it are ignored. */
  truncatedAt: { commit: bigint; position: bigint } | null;
  watermark: Position | null;
  /** Per part of the view's stream (see OnlineStore.setWatermark), its position. */
  parts: Position[];
}

/**
 * The online store held in this process: fast, and gone with the process (every start loads from the
 * offline store). For one process; a shared or restart-surviving store is Redis.
 */
export class MemoryOnlineStore implements OnlineStore {
  private readonly views = new Map<string, ViewState>();
  private opened = false;

  constructor(
    private readonly config: ResolvedMemoryConfig,
    private readonly logger?: Logger,
  ) {}

  async open(): Promise<void> {
    this.opened = true;
    this.logger?.debug('memory online store opened');
  }

  async needsLoad(view: FeatureView): Promise<boolean> {
    this.check();
    // Nothing here survives the process: a view needs a load until one finished in this process.
    return this.state(view).watermark === null;
  }

  async write(batches: readonly FeatureRowBatch[]): Promise<void> {
    this.check();
    for (const { view, rows } of batches) {
      const state = this.state(view);
      for (const row of rows) {
        checkPosition(row.position);
        checkPosition(row.commitPosition);
        const t = state.truncatedAt;
        if (t && (row.commitPosition < t.commit || (row.commitPosition === t.commit && row.position <= t.position)))
          continue;
        if (row.op === 't') {
          state.truncatedAt = { commit: row.commitPosition, position: row.position };
          state.table = new ViewTable(view, this.config.initialCapacity);
        } else state.table.apply(row);
      }
    }
  }

  async setWatermark(view: FeatureView, position: Position, part?: WatermarkPart): Promise<boolean> {
    this.check();
    checkPosition(position);
    const state = this.state(view);
    let through: Position | null = position;
    if (part) {
      const known = state.parts[part.index];
      if (known === undefined || position > known) state.parts[part.index] = position;
      through = lowestPart(state.parts, part.count);
    }
    if (through !== null && (state.watermark === null || through > state.watermark)) state.watermark = through;
    return true;
  }

  async watermark(view: FeatureView): Promise<Position | null> {
    this.check();
    return this.state(view).watermark;
  }

  async read(view: FeatureView, keys: readonly (readonly Value[])[], now?: bigint): Promise<OnlineValue[]> {
    this.check();
    const table = this.state(view).table;
    const at = now ?? BigInt(Date.now()) * 1000n;
    return keys.map((key) => table.read(entityId(key), at));
  }

  async count(view: FeatureView): Promise<number> {
    this.check();
    return this.state(view).table.count;
  }

  async close(): Promise<void> {
    this.opened = false;
    this.views.clear();
  }

  private state(view: FeatureView): ViewState {
    const name = `${view.name}@${view.version}`;
    let state = this.views.get(name);
    if (!state) {
      state = {
        table: new ViewTable(view, this.config.initialCapacity),
        truncatedAt: null,
        watermark: null,
        parts: [],
      };
      this.views.set(name, state);
    }
    return state;
  }

  private check(): void {
    if (!this.opened) throw new Error('the memory online store is not open: call open() first (and not after close())');
  }
}

function checkPosition(position: Position): void {
  if (typeof position !== 'bigint' || position < 0n || position >= POSITION_LIMIT) {
    throw new TypeError(`a position must be an unsigned 64-bit bigint, got ${String(position)}`);
  }
}

/** The lowest position of parts 0…count-1, or null while one has none. */
function lowestPart(parts: readonly Position[], count: number): Position | null {
  let low: Position | null = null;
  for (let i = 0; i < count; i++) {
    const at = parts[i];
    if (at === undefined) return null;
    if (low === null || at < low) low = at;
  }
  return low;
}
