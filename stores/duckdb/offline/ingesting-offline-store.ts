import type { DuckDBConnection } from '@duckdb/node-api';
import type * as arrow from 'apache-arrow';
import type { FeatureRegistry } from '../../../framework/features/feature-registry.js';
import type {
  ExportOptions,
  ExportRequest,
  ExportResult,
  FeatureRowScan,
  FeatureViewStatus,
  OfflineStore,
  ScanOptions,
  TrainingSetOptions,
  ViewRef,
} from '../../../framework/interfaces/index.js';
import { DuckDBOfflineStore } from './duckdb-offline-store.js';
import { readTransaction } from './read-transaction.js';

/**
 * The offline store of the process that ingests: every read on a connection of its own, in a
 * transaction of its own, so that it sees one committed state while the change log commits on its
 * connection (its row count and its rows agree), and never runs inside the log's open commit.
 */
export class IngestingOfflineStore implements OfflineStore {
  constructor(
    private readonly open: () => Promise<DuckDBConnection>,
    private readonly registry: FeatureRegistry,
  ) {}

  latest(view: ViewRef): Promise<arrow.Table> {
    return this.within((store) => store.latest(view));
  }

  asOf(view: ViewRef, at: Date | string | bigint): Promise<arrow.Table> {
    return this.within((store) => store.asOf(view, at));
  }

  trainingSet(options: TrainingSetOptions): Promise<arrow.Table> {
    return this.within((store) => store.trainingSet(options));
  }

  export(request: ExportRequest, out: string, options?: ExportOptions): Promise<ExportResult> {
    return this.within((store) => store.export(request, out, options));
  }

  status(): Promise<FeatureViewStatus[]> {
    return this.within((store, begin) => begin().then(() => store.status()));
  }

  /** The rows views rejected, with the error (for one view, or all). */
  deadLetters(view?: string): Promise<arrow.Table> {
    return this.within((store, begin) => begin().then(() => store.deadLetters(view)));
  }

  /** Streamed on a connection of the scan's own, in a transaction of its own (see DuckDBOfflineStore). */
  async latestRows(view: ViewRef, options?: ScanOptions): Promise<FeatureRowScan> {
    const c = await this.open();
    try {
      return await new DuckDBOfflineStore(c, { definitions: this.registry, openConnection: this.open }).latestRows(
        view,
        options,
      );
    } finally {
      c.closeSync();
    }
  }

  close(): void {}

  private async within<T>(read: (store: DuckDBOfflineStore, begin: () => Promise<void>) => Promise<T>): Promise<T> {
    const c = await this.open();
    const transaction = readTransaction(c);
    try {
      const store = new DuckDBOfflineStore(c, { definitions: this.registry, beginRead: () => transaction.begin() });
      return await read(store, () => transaction.begin());
    } finally {
      await transaction.end();
      c.closeSync();
    }
  }
}
