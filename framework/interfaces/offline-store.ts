import type * as arrow from 'apache-arrow';
import type { FeatureRow } from '../features/feature-rows.js';
import type { FeatureService } from '../features/feature-service.js';
import type { FeatureSelection, FeatureView } from '../features/feature-view.js';
import type { Position } from '../types.js';

/** A view version: a definition, a name (its highest version), or a name and a version. */
export type ViewRef = FeatureView | string | { readonly name: string; readonly version?: number };

/** A spine: entity keys + event times (+ labels) as an Arrow table, row objects, or a `.parquet` / `.csv` file path. */
export type SpineInput = arrow.Table | readonly Record<string, unknown>[] | string;

/** What a training set joins. */
export interface TrainingSetOptions {
  /** Entity keys + event times (+ labels or any other columns, passed through). */
  readonly spine: SpineInput;
  /**
   * Features to join: a feature service (or its name), or views (all their features), `view.select(…)`,
   * and names `"view"`, `"view:feature"`, `"view@2:feature"`.
   */
  readonly features: FeatureService | string | readonly (FeatureView | FeatureSelection | string)[];
  /** Spine column holding the event time. Default `event_timestamp`. */
  readonly timestampColumn?: string;
  /** Overrides every view's ttl: seconds, or e.g. `"7d"`. */
  readonly ttl?: number | string;
  /** Names output features `<view>__<feature>` (else a name clash is an error). Default false. */
  readonly fullFeatureNames?: boolean;
}

/** What an export writes: a view (latest, or as of a time), or a training set. */
export type ExportRequest =
  | { readonly view: ViewRef; readonly asOf?: Date | string | bigint }
  | { readonly trainingSet: TrainingSetOptions };

/** One progress report of an export; the last one has `done: true`. */
export interface ExportProgress {
  /** Rows written so far, when known (Arrow exports count them; Parquet exports report a percentage). */
  readonly rows: number | null;
  /** Rows expected, when known (a training set has one per spine row). */
  readonly total: number | null;
  readonly percent: number | null;
  readonly done: boolean;
}

/** Options of an export. */
export interface ExportOptions {
  /** `parquet` or `arrow` (IPC file format). Default: from the file extension (`.parquet`, `.arrow` / `.feather` / `.ipc`). */
  readonly format?: 'parquet' | 'arrow';
  readonly onProgress?: (progress: ExportProgress) => void;
}

/** The manifest written next to each export (`<file>.manifest.json`), enough to reproduce it. */
export interface ExportManifest {
  readonly featureflow: { readonly manifestVersion: 1 };
  readonly kind: 'latest' | 'asOf' | 'trainingSet';
  readonly createdAt: string;
  readonly file: string;
  readonly format: 'parquet' | 'arrow';
  readonly rows: number;
  readonly asOf?: string;
  readonly spine?: { readonly source: string; readonly rows: number; readonly timestampColumn: string };
  readonly views: readonly {
    readonly name: string;
    readonly version: number;
    readonly table: string;
    readonly fingerprint: string;
    readonly features: readonly string[];
    readonly ttlMicros: string | null;
    /** LSN (X/Y) through which the view's table was current. */
    readonly watermarkLsn: string | null;
  }[];
  /** The lowest watermark of the views: everything committed up to it is reflected. */
  readonly lsnWatermark: string | null;
  readonly rule: string;
  /**
   * Per output column holding a tensor feature: its element type and shape (the file holds each
   * example flat, row-major; Parquet has no fixed-size list, so this is where its shape is kept).
   */
  readonly tensors: Readonly<Record<string, TensorColumn>>;
}

/** A tensor feature's column in an export. */
export interface TensorColumn {
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** What an export wrote. */
export interface ExportResult {
  readonly path: string;
  readonly manifestPath: string;
  readonly rows: number;
  readonly manifest: ExportManifest;
}

/** Per view version, what `featureflow status` shows. */
export interface FeatureViewStatus {
  readonly view: string;
  readonly version: number;
  readonly table: string;
  /** Kept current by ingest (its definition is configured). */
  readonly active: boolean;
  /** History rows (versions and deletions). */
  readonly rows: number;
  /** Entities with current values. */
  readonly entities: number;
  /** Rows the view rejected (see `_feature_dead_letters`). */
  readonly deadLetters: number;
  /** LSN (X/Y) through which the table is current. */
  readonly watermark: string | null;
  /** Rows the last ingesting process ran the view's transform (and filter) on. */
  readonly transformedRows: number;
  /** Microseconds the transform took per row over those rows (measured per batch); null before any. */
  readonly transformMicrosPerRow: number | null;
}

/** Options of a streamed read of a view's history. */
export interface ScanOptions {
  /** Most feature rows per yielded batch. Default 10 000. */
  readonly batchSize?: number;
}

/**
 * A streamed read of one view version's history, from one consistent state of the store: the position
 * that state reflects, and feature rows in bounded batches. Iterate {@link rows} once (ending or
 * breaking the loop releases the read), or call {@link close} when not iterating it to the end.
 */
export interface FeatureRowScan {
  /** The position through which the view's history is current in the state read (null before the first batch). */
  readonly watermark: Position | null;
  /** The feature rows, in batches of at most `batchSize`. */
  readonly rows: AsyncIterable<readonly FeatureRow[]>;
  /** Releases the read; idempotent. */
  close(): Promise<void>;
}

/**
 * The offline feature store: versioned history tables of feature views, read as Arrow tables or
 * exported as files. Any method may be called once the store is open; {@link close} last.
 */
export interface OfflineStore {
  /** Each entity's current feature values (keys, features, valid_from), ordered by key. */
  latest(view: ViewRef): Promise<arrow.Table>;
  /** The feature values valid at `at` (time travel), ordered by key. */
  asOf(view: ViewRef, at: Date | string | bigint): Promise<arrow.Table>;
  /** The spine with point-in-time-correct features joined, in spine order. */
  trainingSet(options: TrainingSetOptions): Promise<arrow.Table>;
  /** Writes a view or a training set to a Parquet or Arrow IPC file, with a manifest next to it. */
  export(request: ExportRequest, out: string, options?: ExportOptions): Promise<ExportResult>;
  /** Per view version: history rows, current entities, dead letters, watermark. */
  status(): Promise<FeatureViewStatus[]>;
  /** Each entity's current feature rows (deletions left out) and the watermark they reflect, streamed in bounded batches, in no set order: to load an online store. */
  latestRows?(view: ViewRef, options?: ScanOptions): Promise<FeatureRowScan>;
  /** Releases the store; idempotent. */
  close(): void;
}
