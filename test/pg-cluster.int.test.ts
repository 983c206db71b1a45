import pg from 'pg';
import { expect, inject, test } from 'vitest';

test('the harness cluster runs with wal_level=logical and password auth', async () => {
  const client = new pg.Client({ connectionString: inject('pgUrl') });
  await client.connect();
  try {
    const { rows } = await client.query('SHOW wal_level');
    expect(rows[0].wal_level).toBe('logical');
  } finally {
    await client.end();
  }
});
