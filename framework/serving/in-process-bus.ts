import type { ChangeBus, FeatureRowsListener, FeatureRowsMessage } from '../interfaces/change-bus.js';

/**
 * The default bus: the ingest and the online side in one process. `publish` hands the message to
 * each listener in turn and resolves once every one has taken it in, so a slow listener slows the
 * ingest (back-pressure) instead of letting messages pile up in memory.
 */
export class InProcessBus implements ChangeBus {
  private readonly listeners: FeatureRowsListener[] = [];
  private closed = false;
  /** The publish under way (the ingest awaits each one), which `close` lets finish. */
  private inFlight: Promise<void> = Promise.resolve();

  async publish(message: FeatureRowsMessage): Promise<void> {
    if (this.closed) throw new Error('the in-process bus is closed: publish before close()');
    const delivery = this.deliver(message);
    this.inFlight = delivery.catch(() => undefined);
    await delivery;
  }

  subscribe(listener: FeatureRowsListener): void {
    if (this.closed) throw new Error('the in-process bus is closed: subscribe before close()');
    this.listeners.push(listener);
  }

  /** Refuses further publishes and resolves once the one under way was delivered; idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.inFlight;
  }

  private async deliver(message: FeatureRowsMessage): Promise<void> {
    for (const listener of this.listeners) await listener(message);
  }
}
