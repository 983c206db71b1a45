import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { FeatureflowError } from '../errors.js';
import { TOKENS } from '../tokens.js';
import type { CommandContext } from './main.js';

/** `featureflow teardown --yes`: drops what the change log's source created (a slot, a publication). */
export function registerTeardownCommand(program: Command, context: CommandContext): void {
  program
    .command('teardown')
    .description('drop what the source created for this change log (replication slot, publication); the store stays')
    .addOption(new Option('--yes', 'confirm: the slot and the WAL it holds are released'))
    .action(async (opts: { yes?: boolean }, cmd: Command) => {
      if (!opts.yes) {
        throw new FeatureflowError(
          'FF_CONFIG_INVALID',
          'teardown drops the replication slot and publication; run it again with --yes to confirm',
        );
      }
      await context.withContainer(cmd, async (container, config) => {
        // What the log recorded of what it created: only that is dropped.
        const record = existsSync(config.store.location) ? (await config.store.inspect()).state.sourceRecord : null;
        const result = await (await container.getAsync(TOKENS.Source)).teardown(record);
        const lines = [
          ...result.dropped.map((what) => `${what}: dropped`),
          ...result.leftAlone.map(
            (what) => `${what}: left alone (this change log did not create it; drop it yourself if nothing uses it)`,
          ),
        ];
        process.stdout.write(`${lines.length > 0 ? lines.join('\n') : 'nothing to drop'}\n`);
      });
    });
}
