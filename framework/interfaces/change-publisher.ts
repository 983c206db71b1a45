import type { Change, Position, VersionedSchema } from '../types.js';

/** One run of committed changes for a publisher: whole transactions, in commit order, in bounded pages. */
export interface PublishRun {
  /** The changes, page by page; the last page ends on a transaction boundary. */
  readonly pages: AsyncIterable<readonly Change[]>;
  /** Every schema version the changes may name (table and version). */
  readonly schemas: readonly VersionedSchema[];
  /** How many tables the change log captures (a snapshot's first and last records are marked across them). */
  readonly tables: readonly string[];
}

/**
 * Sends the change log's raw changes somewhere else once they are durable (e.g. Debezium-compatible
 * records on Kafka), at least once: the engine keeps the position of the last change it sent
 * under {@link ChangePublisher.id} and sends again whatever a stop left unconfirmed.
 */
export interface ChangePublisher {
  /** Names the publisher's position in the change log (e.g. `debezium:<topic prefix>`); fixed for its settings. */
  readonly id: string;
  /**
   * Sends every change of the run, resolving once the destination has acknowledged all of them;
   * after the changes are durable in the change log, one run at a time.
   */
  publish(run: PublishRun): Promise<void>;
  /** Releases connections; idempotent. */
  close(): Promise<void>;
}

/** The position up to which a publisher has sent the log's changes (commit positions), kept in the change log. */
export interface PublishedPositions {
  /** The last commit position sent by `publisher`, or null when it never sent any. */
  published(publisher: string): Promise<Position | null>;
  /** Durably records that `publisher` sent every change committed up to `position`; outside a batch. */
  savePublished(publisher: string, position: Position): Promise<void>;
}
