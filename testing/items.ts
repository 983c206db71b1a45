import type { TableSchema } from '../framework/types.js';

/** A small captured table (`public.items`: id, value, name) for feature tests and benchmarks that feed changes directly. */
export const ITEMS: TableSchema & { version: number } = {
  table: 'public.items',
  version: 1,
  keyColumns: ['id'],
  columns: [
    { name: 'id', type: 'int4', array: false, typeOid: 23, key: true },
    { name: 'value', type: 'float8', array: false, typeOid: 701, key: false },
    { name: 'name', type: 'text', array: false, typeOid: 25, key: false },
  ],
};
