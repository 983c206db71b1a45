/** The child side of {@link ./bench-child.ts}: the spec and `stop` on stdin, events on stdout. */
import { createInterface } from 'node:readline';

/** Sends an event (`ready`, `result`) to the parent; resolves once it is written. */
export function emit(event: string, data: unknown = {}): Promise<void> {
  return new Promise((resolve) => process.stdout.write('@@' + JSON.stringify({ event, data }) + '\n', () => resolve()));
}

/**
 * Runs `main` with the spec read from the first line of stdin, sends its result and exits 0 once it
 * is written (a large result written just before `process.exit` may be cut short), or prints the
 * failure and exits 1. `stopped` resolves when the parent asks the child to finish (or goes away).
 */
export function runChild<Spec, Result>(main: (spec: Spec, stopped: Promise<void>) => Promise<Result>): void {
  const lines = createInterface({ input: process.stdin });
  let onSpec: (spec: Spec) => void = () => undefined;
  const spec = new Promise<Spec>((resolve) => (onSpec = resolve));
  let first = true;
  const stopped = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      if (first) {
        first = false;
        onSpec(JSON.parse(line) as Spec);
      } else if (line.trim() === 'stop') resolve();
    });
    lines.on('close', () => resolve());
  });
  spec
    .then((s) => main(s, stopped))
    .then(
      async (result) => {
        await emit('result', result);
        lines.close();
        process.exit(0);
      },
      (error: unknown) => {
        process.stderr.write(`${process.argv[1]} failed: ${(error as Error)?.stack ?? String(error)}\n`);
        process.exit(1);
      },
    );
}
