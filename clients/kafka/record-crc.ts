/**
 * kafkajs computes the CRC-32C of every record batch it produces in JavaScript, a byte at a time
 * (about 200 MB/s): the largest single cost of publishing Debezium records (bench kafka, throughput:
 * 13% of the publishing thread). Before kafkajs first loads that module (lazily, at its first produce
 * request), {@link useNativeRecordCrc} puts `@node-rs/crc32`'s in its place (SSE 4.2, the same
 * checksum: test/kafka-record-crc.test.ts compares them, and the broker checks every batch's CRC, so
 * a wrong one fails every produce). Where kafkajs's file is not where kafkajs 2.2 keeps it, or was
 * loaded already, kafkajs's own is used.
 */
import Module, { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The module of kafkajs 2.2 that the record batch encoder requires for its CRC. */
export const KAFKAJS_CRC_MODULE = 'kafkajs/src/protocol/recordBatch/crc32C/index.js';

let installed: boolean | undefined;

/** The checksum kafkajs gets in place of its own, once {@link useNativeRecordCrc} installed it. */
export let nativeRecordCrc: ((buffer: Buffer) => number) | undefined;

/** Makes kafkajs use the native CRC-32C; true when it will (idempotent). */
export function useNativeRecordCrc(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let path: string;
  let crc32c: (input: Buffer) => number;
  try {
    path = require.resolve(KAFKAJS_CRC_MODULE);
    crc32c = (require('@node-rs/crc32') as { crc32c: (input: Buffer) => number }).crc32c;
  } catch {
    return false;
  }
  if (require.cache[path]) return false;
  const module = new Module(path);
  module.filename = path;
  module.loaded = true;
  // kafkajs's module returns the checksum as an unsigned 32-bit number, as crc32c does.
  nativeRecordCrc = (buffer: Buffer) => crc32c(buffer);
  module.exports = nativeRecordCrc;
  require.cache[path] = module;
  installed = true;
  return true;
}
