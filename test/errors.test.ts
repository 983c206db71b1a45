import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { ErrorCodes } from '../framework/errors.js';

// The catalogue in framework/errors.ts and docs/errors.md must list the same codes, with the same
// retriable flag (as fastify's errors test keeps its docs in step).

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

/** The rows of the table: `| \`FF_…\` | yes/no | meaning | fix |`. */
const rows = [...doc.matchAll(/^\|\s*`(FF_[A-Z0-9_]+)`\s*\|\s*(yes|no)\s*\|([^|]+)\|([^|]+)\|\s*$/gm)].map((m) => ({
  code: m[1]!,
  retriable: m[2] === 'yes',
  meaning: m[3]!.trim(),
  fix: m[4]!.trim(),
}));

describe('docs/errors.md', () => {
  test('documents every code of ErrorCodes, and no other', () => {
    expect(rows.map((r) => r.code).sort()).toEqual(Object.keys(ErrorCodes).sort());
  });

  test('lists each code once', () => {
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
  });

  test('gives the same retriable flag as the catalogue, a meaning and a fix', () => {
    for (const row of rows) {
      expect(row.retriable, row.code).toBe(ErrorCodes[row.code as keyof typeof ErrorCodes].retriable);
      expect(row.meaning.length, `${row.code} meaning`).toBeGreaterThan(10);
      expect(row.fix.length, `${row.code} fix`).toBeGreaterThan(3);
    }
  });

  test('no code is mentioned in the docs outside the table without being in the catalogue', () => {
    const mentioned = new Set(doc.match(/FF_[A-Z0-9_]+/g));
    for (const code of mentioned) expect(Object.keys(ErrorCodes), code).toContain(code);
  });
});
