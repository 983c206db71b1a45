#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=32
// A 32 MB young generation (V8's default tops out at 16 MB): the stream allocates a little per change,
// and with the default the scavenges took ~0.6 s of main-thread time per 1M changes. Interleaved runs
// of bench/streaming.ts: 0.99-1.05x pg_recvlogical at 16 MB, 1.11-1.15x at 32 MB; the snapshot's peak
// RSS unchanged (bench/snapshot.ts). Two glibc malloc arenas instead of one per thread (DuckDB's and
// libuv's threads each got their own): the snapshot's peak RSS 331 MB instead of 357, streaming as
// fast. The benchmarks start their ingest child with the same flag and variable.
// The featureflow CLI, on the compiled package (`npm run build`, run by `prepare`).
import { cli } from '../dist/index.js';

// Exits at once with the code: a DuckDB or file-system call that never returns (a hung mount) must
// not keep the process alive after its bounded wait has given up on it.
process.exit(await cli(process.argv));
