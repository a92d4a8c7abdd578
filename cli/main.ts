#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, loadConfigFile } from '../functions/config/load.js';
import { EXIT } from './commands/common.js';
/**
 * `xcr`: run jobs locally (the synthesized workflow through the local runner), inspect recovery
 * points, clone one for failover or a test restore, validate a configuration.
 */
import { drillCommand } from './commands/drill.js';
import { cloneCommand, recoveryPointsCommand, statusCommand } from './commands/inspect.js';
import { runCommand } from './commands/run.js';

function exitCodeFor(err: Error & { code?: unknown }): number {
  if (err instanceof ConfigError || err.name === 'UsageError') return EXIT.badInput;
  if (err.name === 'XapiTransportError') return EXIT.unreachable;
  if (err.name === 'XapiError' && err.code === 'SESSION_AUTHENTICATION_FAILED') return EXIT.unreachable;
  return EXIT.runFailed;
}

function hintFor(err: Error & { code?: unknown }): string {
  if (err.name === 'XapiError' && err.code === 'SESSION_AUTHENTICATION_FAILED') {
    return '\nhint: the pool refused the username or password; check the environment variable its password refers to';
  }
  if (err.name === 'XapiTransportError') {
    return '\nhint: check the pool url, that the host is reachable (VPN), and its tlsFingerprint';
  }
  return '';
}

async function main(argv: string[]): Promise<number> {
  let code = EXIT.ok as number;
  const program = new Command('xcr')
    .description('continuous replication of XenServer / XCP-ng VMs')
    .showHelpAfterError()
    .exitOverride();
  const action =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) => {
      code = await fn(...args);
    };

  program
    .command('validate')
    .argument('<config>', 'the JSON configuration file')
    .description('check a configuration file; every problem names its field and the fix')
    .option('--json', 'machine-readable output')
    .action(
      action(async (file: string, opts: { json?: boolean }) => {
        const config = loadConfigFile(file);
        const summary = { valid: true, pools: Object.keys(config.pools), jobs: config.jobs.map((j) => j.id) };
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(summary)}\n`
            : `${file}: valid (${summary.jobs.length} job(s): ${summary.jobs.join(', ')})\n`,
        );
        return EXIT.ok;
      }),
    );
  program
    .command('run')
    .description('run a job once through the local workflow runner (or follow its schedule with --watch)')
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'the job (default: the only one)')
    .option('--watch', 'keep running on the job schedule (rate schedules)')
    .option('--cycles <n>', 'with --watch: stop after n scheduled runs')
    .option('--json', 'one JSON run result per line')
    .option('-v, --verbose', 'step logs (JSON lines) on stderr')
    .action(action(runCommand));
  program
    .command('status')
    .description('recent local runs, newest recovery point and replication lag per VM')
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'only this job')
    .option('--json', 'machine-readable output')
    .action(
      action((opts: { config: string; job?: string; json?: boolean }) => statusCommand(opts.job, opts)),
    );
  program
    .command('recovery-points')
    .argument('[job]', 'the job (default: the only one)')
    .description("list a job's recovery points on the destination, newest first")
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('--json', 'machine-readable output')
    .action(action(recoveryPointsCommand));
  program
    .command('drill')
    .argument('[job]', 'the job (default: the only one)')
    .description(
      'recovery drill: clone the newest recovery point of each VM, isolate, boot and check it, then remove the clone',
    )
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('--vm <uuid>', 'only this source VM')
    .option('--point <uuid>', 'drill this recovery point instead of the newest')
    .option('--json', 'machine-readable output')
    .option('-v, --verbose', 'step logs (JSON lines) on stderr')
    .action(action(drillCommand));
  program
    .command('clone')
    .argument('<recovery-point>', 'uuid of a recovery point (see recovery-points)')
    .description(
      'make a startable VM from a recovery point (failover or test restore); the recovery point stays as it is',
    )
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'the job whose destination holds it (default: the only one)')
    .option('--name <label>', 'name of the new VM')
    .option('--json', 'machine-readable output')
    .action(action(cloneCommand));

  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: unknown; exitCode?: number };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.ok : EXIT.badInput;
    }
    process.stderr.write(`xcr: ${e.message}${hintFor(e)}\n`);
    return exitCodeFor(e);
  }
  return code;
}

process.exitCode = await main(process.argv);
