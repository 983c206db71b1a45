#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=8
// An 8 MB young generation (V8's default grows it up to 16 MB): each scavenge of `serve`'s heap stops
// the event loop for as long as it copies what is still alive, which grows with the time between
// scavenges. bench/serve-latency.ts at 1000 txn/s, commit -> prediction p99: 9.2-10.6 ms at 8 MB
// (scavenges of 2.6-2.8 ms on average), 10.6-12.3 ms at 16, 13-17 ms at 32 (5-6 ms). Ingest is not
// slower: bench/streaming.ts 1.12x pg_recvlogical at 8 MB against 1.05x at 32 in the same session,
// bench/snapshot.ts 0.56x and 0.54x, the same peak RSS.
// Two glibc malloc arenas instead of one per thread (DuckDB's and
// libuv's threads each got their own): the snapshot's peak RSS 331 MB instead of 357, streaming as
// fast. The benchmarks start their ingest child with the same flag and variable.
// The featureflow CLI, on the compiled package (`npm run build`, run by `prepare`).
import { cli } from '../dist/index.js';

// Exits at once with the code: a DuckDB or file-system call that never returns (a hung mount) must
// not keep the process alive after its bounded wait has given up on it.
process.exit(await cli(process.argv));
