import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { nativeRecordCrc, useNativeRecordCrc } from '../clients/kafka/record-crc.js';

const require = createRequire(import.meta.url);
// kafkajs' own CRC-32C (a byte at a time), which its record batch encoder would use: the reference.
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (buffer: Buffer) => number;
const kafkajsChecksum = (buffer: Buffer) => kafkajsCrc32C(buffer) >>> 0;

describe("record batches' CRC", () => {
  test('kafkajs loads the native CRC-32C in place of its own, which gives the same checksums', () => {
    expect(useNativeRecordCrc()).toBe(true);
    // Idempotent.
    expect(useNativeRecordCrc()).toBe(true);
    // What kafkajs's record batch encoder gets when it requires its CRC module, as it does.
    const encoder = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js');
    const crc = createRequire(encoder)('../crc32C') as (buffer: Buffer) => number;
    expect(crc).toBe(nativeRecordCrc);
    // The check value of CRC-32C (RFC 3720).
    expect(crc(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc(Buffer.alloc(0))).toBe(0);
    for (const size of [1, 3, 7, 8, 9, 63, 64, 1000, 4096, 65_537, 1 << 20]) {
      const buffer = randomBytes(size);
      expect(crc(buffer), `${size} bytes`).toBe(kafkajsChecksum(buffer));
      // A slice of a larger buffer (kafkajs hands the encoder's buffer sliced to its length).
      const slice = randomBytes(size + 16).subarray(5, 5 + size);
      expect(crc(slice), `${size} bytes at an offset`).toBe(kafkajsChecksum(slice));
    }
  });
});
