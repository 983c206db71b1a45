import cliProgress from 'cli-progress';
import { msBehind, type BatchInfo } from '../ingest/batch-info.js';
import { formatPosition } from '../types.js';

/**
 * Shows ingest progress on a terminal (a cli-progress bar per phase: snapshot rows, then streamed
 * changes with the checkpoint); prints nothing when the stream is not a TTY.
 */
export class IngestProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private phase: 'snapshot' | 'stream' | undefined;
  private total = 0;
  private readonly started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream) {}

  update(batch: BatchInfo): void {
    if (!this.out.isTTY) return;
    const phase = batch.snapshot ? 'snapshot' : 'stream';
    if (phase !== this.phase) {
      this.bar?.stop();
      this.phase = phase;
      this.total = 0;
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.out,
          format:
            phase === 'snapshot'
              ? 'snapshot {table} | {value} rows | {rate} rows/s'
              : 'stream | {value} changes | {rate} changes/s | {behind} behind the source | checkpoint {lsn}',
          hideCursor: true,
          barsize: 0,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(0, 0, { table: '', rate: 0, lsn: '-', behind: '-' });
    }
    this.total += batch.changes;
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    this.bar!.setTotal(this.total);
    this.bar!.update(this.total, {
      table: batch.snapshot?.table ?? '',
      rate: Math.round(this.total / seconds),
      lsn: batch.complete ? formatPosition(batch.checkpoint) : '…',
      // The newest durable commit's age (the source's clock against this machine's).
      ...(batch.commitTime === undefined ? {} : { behind: `${msBehind(batch.commitTime)} ms` }),
    });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
