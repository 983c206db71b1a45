import { Command } from 'commander';
import type { Container } from 'inversify';
import type { ResolvedConfig } from '../config.js';
import { closeContainer } from '../container.js';
import { FeatureflowError } from '../errors.js';
import { registerExportCommand } from './export-command.js';
import { registerIngestCommand } from './ingest-command.js';
import { loadConfig, type ConfigOptions, type ConfigSupport } from './load-config.js';
import { registerServeCommand } from './serve-command.js';
import { registerStatusCommand } from './status-command.js';
import { registerTeardownCommand } from './teardown-command.js';

/** What the CLI needs from the composition root. */
export interface CliDeps extends ConfigSupport {
  createContainer(config: ResolvedConfig, options?: { readonly serving?: boolean }): Promise<Container>;
}

/** What every command gets. */
export interface CommandContext {
  /** The command's config (file and global options). */
  loadConfig(cmd: Command): Promise<ResolvedConfig>;
  /** Runs `body` with a container of the command's config, closed afterwards. */
  withContainer<T>(
    cmd: Command,
    body: (container: Container, config: ResolvedConfig) => Promise<T>,
    options?: { readonly serving?: boolean },
  ): Promise<T>;
}

/** Builds the `featureflow` command-line program. */
export function buildProgram(deps: CliDeps): Command {
  const program = new Command('featureflow')
    .description('PostgreSQL → ML features, continuously: snapshot + change data capture into versioned feature tables')
    .option('-c, --config <file>', 'config file (default: featureflow.config.ts)')
    .option('--tables <list>', "comma-separated tables to capture (overrides the source's tables)")
    .showHelpAfterError();
  const context: CommandContext = {
    loadConfig: (cmd) => loadConfig(cmd.optsWithGlobals<ConfigOptions>(), deps),
    async withContainer(cmd, body, options) {
      const config = await context.loadConfig(cmd);
      const container = await deps.createContainer(config, options);
      try {
        return await body(container, config);
      } finally {
        await closeContainer(container);
      }
    },
  };
  registerIngestCommand(program, context);
  registerStatusCommand(program, context);
  registerTeardownCommand(program, context);
  registerExportCommand(program, context);
  registerServeCommand(program, context);
  return program;
}

/** Runs the CLI; returns the exit code. Errors print their code and message, never a stack for known ones. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  program.exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    const e = error as { code?: string; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return e.exitCode ?? 1;
    if (error instanceof FeatureflowError) {
      process.stderr.write(`featureflow: error [${error.code}]: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`featureflow: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}
