import { PassThrough } from 'node:stream';
import { expect, test } from 'vitest';
import { IngestProgressView } from '../framework/cli/progress.js';

/** A terminal's stream: what `featureflow ingest` draws its progress on (stderr when it is a TTY). */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
  Object.assign(stream, {
    isTTY: true,
    columns: 120,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
  });
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

test("the stream's progress line says how far behind the source the newest durable commit is", () => {
  const { stream, text } = terminal();
  const view = new IngestProgressView(stream);
  const commitTime = BigInt(Date.now() - 1500) * 1000n;
  view.update({ changes: 3, tables: { 'public.t': { c: 3 } }, checkpoint: 0x16b3748n, complete: true, commitTime });
  view.stop();
  const line = text();
  expect(line).toContain('3 changes');
  const behind = Number(/(\d+) ms behind the source/.exec(line)?.[1]);
  expect(behind).toBeGreaterThanOrEqual(1500);
  expect(behind).toBeLessThan(10_000);
});
