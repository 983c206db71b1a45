/**
 * Yields what `source` yields, asking it for the next item as soon as one is handed out: the snapshot
 * reader decodes batch N+1 while the store commits batch N (mostly I/O on the store's own threads).
 * On exit, waits for that read to settle before closing the source (it ends at the next full batch).
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let next = it.next();
  let done = false;
  try {
    while (true) {
      const result = await next;
      if (result.done) {
        done = true;
        return;
      }
      next = it.next();
      // A failure of the read ahead surfaces when it is awaited (or is moot after an earlier failure).
      next.catch(() => undefined);
      yield result.value;
    }
  } finally {
    if (!done) {
      await next.catch(() => undefined);
      await it.return?.();
    }
  }
}
