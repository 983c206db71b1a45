import { describe, expect, test } from 'vitest';
import { entityId } from '../framework/features/entity-key.js';
import type { Row, Value } from '../framework/types.js';
import { encodeKey } from '../stores/duckdb/change-log/log-keys.js';

// One identity of a row's key: the feature history, the online stores and the TOAST filler group by
// `entityId`, the change log by its key text (`encodeKey`). Two keys are the same entity in one exactly
// when they are the same row in the other.

interface Case {
  readonly what: string;
  readonly columns: readonly string[];
  readonly a: readonly Value[];
  readonly b: readonly Value[];
  readonly same: boolean;
}

const TWO_53 = 2n ** 53n;

const CASES: Case[] = [
  { what: 'int4 1 and int8 1n', columns: ['id'], a: [1], b: [1n], same: true },
  { what: 'int4 -7 and int8 -7n', columns: ['id'], a: [-7], b: [-7n], same: true },
  { what: 'int4 0 and int8 0n', columns: ['id'], a: [0], b: [0n], same: true },
  {
    what: 'the largest safe integer as number and as bigint',
    columns: ['id'],
    a: [Number(TWO_53 - 1n)],
    b: [TWO_53 - 1n],
    same: true,
  },
  {
    what: 'the smallest safe integer as number and as bigint',
    columns: ['id'],
    a: [-Number(TWO_53 - 1n)],
    b: [-(TWO_53 - 1n)],
    same: true,
  },
  { what: 'int8 2^53 + 1 and 2^53', columns: ['id'], a: [TWO_53 + 1n], b: [TWO_53], same: false },
  { what: 'int8 -(2^53 + 1) and -2^53', columns: ['id'], a: [-(TWO_53 + 1n)], b: [-TWO_53], same: false },
  { what: 'int8 2^63 - 1 and 2^63 - 2', columns: ['id'], a: [2n ** 63n - 1n], b: [2n ** 63n - 2n], same: false },
  { what: 'int8 2^53 + 1, twice', columns: ['id'], a: [TWO_53 + 1n], b: [TWO_53 + 1n], same: true },
  { what: 'int 1 and int 2', columns: ['id'], a: [1], b: [2n], same: false },
  { what: 'text, equal', columns: ['k'], a: ['ünï "q" \\ ,'], b: ['ünï "q" \\ ,'], same: true },
  { what: 'text, different', columns: ['k'], a: ['a'], b: ['A'], same: false },
  { what: "text '1' and int 1", columns: ['k'], a: ['1'], b: [1], same: false },
  { what: 'empty text and null', columns: ['k'], a: [''], b: [null], same: false },
  { what: 'composite, int4 and int8 parts', columns: ['id', 'region'], a: [1, 'eu'], b: [1n, 'eu'], same: true },
  { what: 'composite, one part different', columns: ['id', 'region'], a: [1, 'eu'], b: [1, 'us'], same: false },
  { what: 'composite, parts in another order', columns: ['a', 'b'], a: [1, 2], b: [2, 1], same: false },
  {
    what: 'composite, a comma moved between text parts',
    columns: ['a', 'b'],
    a: ['x,', 'y'],
    b: ['x', ',y'],
    same: false,
  },
  {
    what: 'composite, a quote and comma moved between text parts',
    columns: ['a', 'b'],
    a: ['x","', 'y'],
    b: ['x', '","y'],
    same: false,
  },
  {
    what: 'composite, beyond 2^53 in the int8 part',
    columns: ['id', 'k'],
    a: [TWO_53 + 1n, 'x'],
    b: [TWO_53, 'x'],
    same: false,
  },
];

function row(columns: readonly string[], values: readonly Value[]): Row {
  return Object.fromEntries(columns.map((c, i) => [c, values[i]!]));
}

describe('entity identity: entityId and the change log key text agree', () => {
  test.each(CASES)('$what', ({ columns, a, b, same }) => {
    expect(entityId(a) === entityId(b), 'entityId').toBe(same);
    expect(encodeKey(row(columns, a), columns) === encodeKey(row(columns, b), columns), 'encodeKey').toBe(same);
  });
});
