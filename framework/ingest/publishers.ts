import { changesOf } from '../changes-of.js';
import type { Materialized, Materializer } from '../features/materialize.js';
import type { ChangeBus, ChangeLog, ChangePublisher } from '../interfaces/index.js';
import type { Change, ChangeBatch, Position, VersionedSchema } from '../types.js';
import { BusPublisher } from './bus-publisher.js';
import { type FreshChanges, publishCommitted, publishFresh } from './publish-committed.js';

/** A commit of streamed batches, whole transactions, made after the log's checkpoint `after`. */
export interface FreshCommit {
  readonly after: Position;
  readonly served: readonly { readonly batch: ChangeBatch; readonly features: Materialized }[];
}

/**
 * The ingest's publishers (a {@link ChangePublisher}, e.g. Debezium records, and a bus between
 * processes) and what each has sent. After a commit of streamed changes, a publisher that has sent
 * everything before it gets the commit as it is in memory (the bus: the feature rows as materialized
 * before the commit, the rows the history holds); otherwise it gets what the log holds past the
 * position the log recorded for it. Positions sent from memory are recorded with the log's next
 * commit ({@link pending}) or by {@link save}: a stop before that sends them again (at least once).
 */
export class Publishers {
  private readonly bus: BusPublisher | undefined;
  private readonly all: readonly ChangePublisher[];
  private captured: readonly string[] = [];
  /** Per publisher, the log's checkpoint through which it has sent every change. */
  private readonly sentThrough = new Map<string, Position>();
  /** Per publisher, the newest commit position it sent from memory and the log has not recorded yet. */
  private readonly unsaved = new Map<string, Position>();
  /** The send from memory under way, behind which the next one starts (see {@link afterCommit}). */
  private sending: Promise<void> | undefined;
  /** The log's schemas as a publisher needs them, read again after a batch brings new ones. */
  private logSchemas: Promise<VersionedSchema[]> | undefined;

  constructor(
    private readonly log: ChangeLog,
    private readonly materializer: Materializer,
    publisher: ChangePublisher | undefined,
    bus: ChangeBus | undefined,
  ) {
    this.bus = bus?.publisherId ? new BusPublisher(bus, materializer) : undefined;
    this.all = [publisher, this.bus].filter((p): p is ChangePublisher => p !== undefined);
  }

  /** The captured tables, whose changes are sent (known once the source prepared). */
  capture(tables: readonly string[]): void {
    this.captured = tables;
  }

  /** Positions sent and not recorded yet, for the log's next commit to record; undefined when none. */
  pending(): ReadonlyMap<string, Position> | undefined {
    return this.unsaved.size > 0 ? new Map(this.unsaved) : undefined;
  }

  /** The log committed what {@link pending} gave (sent meanwhile stays pending). */
  recorded(positions: ReadonlyMap<string, Position> | undefined): void {
    for (const [id, position] of positions ?? []) if (this.unsaved.get(id) === position) this.unsaved.delete(id);
  }

  /** A batch brought schemas the log now holds. */
  schemasAdded(): void {
    this.logSchemas = undefined;
  }

  /**
   * Sends what the change log committed and a publisher has not sent yet: `fresh` from memory to a
   * publisher that has sent everything before it, the log's changes to the others (after each durable
   * batch, and before following, for what a stop left unsent). Waits for the send under way first.
   */
  async publish(fresh?: FreshCommit): Promise<void> {
    await this.drain();
    try {
      for (const publisher of this.all) {
        if (fresh && this.sentThrough.get(publisher.id) === fresh.after) {
          await (await this.fromMemory(publisher, fresh))();
          continue;
        }
        this.sentThrough.delete(publisher.id);
        await this.save(publisher.id);
        const through = await publishCommitted(this.log, publisher, this.captured);
        if (through !== null) this.sentThrough.set(publisher.id, through);
      }
    } catch (error) {
      this.sentThrough.clear();
      throw error;
    }
  }

  /**
   * After a commit of streamed changes: when every publisher has sent (or is sending) everything
   * before it, sends it from memory behind the send under way and waits only for that one, so that
   * the next commit overlaps this send; otherwise as {@link publish}. What needs the log is read
   * here, before the next commit begins; the send itself touches only memory and the publishers.
   * A failed send is thrown by the next call, {@link drain} or {@link save}, and every publisher
   * then sends what the log holds past the position it recorded (at least once).
   */
  async afterCommit(fresh: FreshCommit | undefined): Promise<void> {
    if (!fresh || !this.all.every((p) => this.sentThrough.get(p.id) === fresh.after)) return this.publish(fresh);
    const sends: (() => Promise<void>)[] = [];
    for (const publisher of this.all) sends.push(await this.fromMemory(publisher, fresh));
    const before = this.sending;
    const mine = (async () => {
      await before;
      for (const send of sends) await send();
    })();
    mine.catch(() => undefined);
    this.sending = mine;
    await this.waitFor(before);
  }

  /** Waits for the send under way; throws its failure. */
  async drain(): Promise<void> {
    await this.waitFor(this.sending);
  }

  /** Records what publishers sent and the log has not recorded yet (all of them, or one), once sent. */
  async save(only?: string): Promise<void> {
    await this.drain();
    for (const [id, position] of [...this.unsaved]) {
      if (only !== undefined && id !== only) continue;
      await this.log.savePublished(id, position);
      this.unsaved.delete(id);
    }
  }

  private async waitFor(send: Promise<void> | undefined): Promise<void> {
    if (!send) return;
    try {
      await send;
    } catch (error) {
      this.sending = undefined;
      this.sentThrough.clear();
      throw error;
    }
    if (this.sending === send) this.sending = undefined;
  }

  /**
   * The send of a fresh commit to a publisher that has sent everything before it, from memory;
   * counted as sent through the commit from now on (until a send fails).
   */
  private async fromMemory(publisher: ChangePublisher, fresh: FreshCommit): Promise<() => Promise<void>> {
    const through = fresh.served.at(-1)!.batch.checkpoint;
    let send: () => Promise<void>;
    if (publisher === this.bus) {
      const bus = this.bus;
      const rows = fresh.served.flatMap((s) => s.features.batches);
      send = fresh.served.some((s) => s.batch.size > 0)
        ? async () => {
            await bus.publishRows(rows, through);
            this.unsaved.set(publisher.id, through);
          }
        : async () => {};
    } else {
      const ready = await this.freshChanges(fresh);
      send = async () => {
        const sent = await publishFresh(publisher, ready);
        if (sent !== null) this.unsaved.set(publisher.id, sent);
      };
    }
    this.sentThrough.set(publisher.id, through);
    return send;
  }

  /** The changes of a fresh commit as the log holds them. */
  private async freshChanges(fresh: FreshCommit): Promise<FreshChanges> {
    const tables = new Set(this.captured);
    const changes: Change[] = [];
    for (const { batch } of fresh.served) {
      for (const change of changesOf(batch, (t, v) => this.materializer.schemaOf(t, v), tables)) changes.push(change);
    }
    this.logSchemas ??= this.log.schemas();
    return {
      changes,
      schemas: await this.logSchemas,
      tables: this.captured,
    };
  }
}
