import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ErrorCodes, type ErrorCatalog } from '../framework/errors.js';
import { POSTGRES_ERRORS } from '../sources/postgres/postgres-errors.js';
import { DUCKDB_ERRORS } from '../stores/duckdb/duckdb-errors.js';
import { REDIS_ERRORS } from '../stores/redis/redis-errors.js';
import { POSTGRES_PREDICTIONS_ERRORS } from '../stores/postgres/postgres-predictions-errors.js';
import { TFJS_ERRORS } from '../scorers/tfjs/tfjs-errors.js';
import { KAFKA_ERRORS } from '../clients/kafka/kafka-errors.js';
import { KAFKA_BUS_ERRORS } from '../stores/kafka/kafka-bus-errors.js';
import { DEBEZIUM_TOPICS_ERRORS } from '../sources/kafka/debezium-topics-errors.js';
import { DIGITS_ERRORS } from '../features/digits/digits-errors.js';

// The catalogues (the framework's in framework/errors.ts, each adapter's in its <name>-errors.ts) and
// docs/errors.md must list the same codes, with the same retriable flag (as fastify's errors test
// keeps its docs in step); and every code the sources raise must be in a catalogue.

const CATALOGUES: Record<string, ErrorCatalog> = {
  'framework/errors.ts': ErrorCodes,
  'sources/postgres/postgres-errors.ts': POSTGRES_ERRORS,
  'stores/duckdb/duckdb-errors.ts': DUCKDB_ERRORS,
  'stores/redis/redis-errors.ts': REDIS_ERRORS,
  'stores/postgres/postgres-predictions-errors.ts': POSTGRES_PREDICTIONS_ERRORS,
  'scorers/tfjs/tfjs-errors.ts': TFJS_ERRORS,
  'clients/kafka/kafka-errors.ts': KAFKA_ERRORS,
  'stores/kafka/kafka-bus-errors.ts': KAFKA_BUS_ERRORS,
  'sources/kafka/debezium-topics-errors.ts': DEBEZIUM_TOPICS_ERRORS,
  'features/digits/digits-errors.ts': DIGITS_ERRORS,
};
/** Every declared code → its meaning. */
const declared = new Map(Object.values(CATALOGUES).flatMap((catalogue) => Object.entries(catalogue)));

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');

/** The rows of the table: `| \`FF_…\` | yes/no | meaning | fix |`. */
const rows = [...doc.matchAll(/^\|\s*`(FF_[A-Z0-9_]+)`\s*\|\s*(yes|no)\s*\|([^|]+)\|([^|]+)\|\s*$/gm)].map((m) => ({
  code: m[1]!,
  retriable: m[2] === 'yes',
  meaning: m[3]!.trim(),
  fix: m[4]!.trim(),
}));

/** Codes written as string literals in the first argument of `new FeatureflowError(…)`, by file, in the package's sources. */
function raisedCodes(): Map<string, string[]> {
  const raised = new Map<string, string[]>();
  for (const dir of ['framework', 'clients', 'sources', 'stores', 'scorers', 'features']) {
    for (const file of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      const text = readFileSync(join(ROOT, dir, file), 'utf8');
      // The first argument up to its comma: a literal, or a choice between literals.
      for (const [, first] of text.matchAll(/new FeatureflowError\(\s*([^,]+),/g)) {
        for (const [code] of first!.matchAll(/FF_[A-Z0-9_]+/g))
          raised.set(code, [...(raised.get(code) ?? []), `${dir}/${file}`]);
      }
    }
  }
  return raised;
}

describe('docs/errors.md', () => {
  test('documents every code of every catalogue, and no other', () => {
    expect(rows.map((r) => r.code).sort()).toEqual([...declared.keys()].sort());
  });

  test('no code is declared in two catalogues', () => {
    const all = Object.values(CATALOGUES).flatMap((catalogue) => Object.keys(catalogue));
    expect(all.length).toBe(declared.size);
  });

  test('lists each code once', () => {
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
  });

  test('gives the same retriable flag as the catalogue, a meaning and a fix', () => {
    for (const row of rows) {
      expect(row.retriable, row.code).toBe(declared.get(row.code)?.retriable);
      expect(row.meaning.length, `${row.code} meaning`).toBeGreaterThan(10);
      expect(row.fix.length, `${row.code} fix`).toBeGreaterThan(3);
    }
  });

  test('no code is mentioned in the docs outside the table without being in a catalogue', () => {
    const mentioned = new Set(doc.match(/FF_[A-Z0-9_]+/g));
    for (const code of mentioned) expect([...declared.keys()], code).toContain(code);
  });
});

describe('the sources', () => {
  test('raise only declared codes: every code in `new FeatureflowError(…)` is in a catalogue', () => {
    const raised = raisedCodes();
    // The scan finds the codes (a broken pattern would pass vacuously).
    expect(raised.has('FF_CONFIG_INVALID')).toBe(true);
    expect(raised.has('FF_PG_SLOT_FOREIGN')).toBe(true);
    const undeclared = [...raised]
      .filter(([code]) => !declared.has(code))
      .map(([code, files]) => `${code} (${[...new Set(files)].join(', ')})`);
    expect(undeclared).toEqual([]);
  });
});
