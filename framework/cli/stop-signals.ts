/**
 * Stops a long-running command on SIGINT or SIGTERM: the first signal aborts (the command finishes
 * its current batch, drains, and exits 0), a second one quits at once (exit 130). Returns the signal
 * to pass on, and a function that removes the handlers.
 */
export function stopOnSignals(what: string): { readonly signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`stopping ${what} (Ctrl-C again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
