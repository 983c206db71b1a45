#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=32
// A 32 MB young generation (V8's default tops out at 16 MB): the stream allocates a little per change,
// and with the default the scavenges took ~0.6 s of main-thread time per 1M changes. Interleaved runs
// of bench/streaming.ts: 0.99-1.05x pg_recvlogical at 16 MB, 1.11-1.15x at 32 MB; the snapshot's peak
// RSS unchanged (bench/snapshot.ts). Two glibc malloc arenas instead of one per thread (DuckDB's and
// libuv's threads each got their own): the snapshot's peak RSS 331 MB instead of 357, streaming as
// fast. The benchmarks start their ingest child with the same flag and variable.
// The featureflow CLI. Sources are TypeScript; tsx compiles them on the fly with the project's
// tsconfig (inversify's decorators need experimentalDecorators), whatever the working directory.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
const { cli } = await import('../index.ts');
process.exitCode = await cli(process.argv);
