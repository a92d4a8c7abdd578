#!/usr/bin/env node
/**
 * `xcr`: run jobs locally (the synthesized workflow through the local runner), inspect recovery
 * points, clone one for failover or a test restore, validate a configuration.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { EXIT } from './commands/exit.js';

const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
  version: string;
};

function exitCodeFor(err: Error & { code?: unknown; exitCode?: number }): number {
  if (err.name === 'CliProblem' && typeof err.exitCode === 'number') return err.exitCode;
  if (err.name === 'XcrPermanentError' && err.code === 'RECOVERY_POINT_NOT_FOUND') return EXIT.badInput;
  // a refusal (errors.ts XcrRefusal): the state does not allow what was asked
  if (err.name === 'XcrPermanentError' && 'refused' in err)
    return err.code === 'SOURCE_UNREACHABLE' ? EXIT.unreachable : EXIT.badInput;
  if (err.name === 'ConfigError' || err.name === 'UsageError' || err.name === 'LeaseHeldError')
    return EXIT.badInput;
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
    .version(version, '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride();
  // Each command's module is imported when it runs: `xcr --version` or `xcr validate` load neither
  // the local runner nor the XAPI client.
  type CommandFn = (...args: never[]) => Promise<number>;
  const action =
    (load: () => Promise<CommandFn>) =>
    async (...args: unknown[]) => {
      code = await ((await load()) as (...a: unknown[]) => Promise<number>)(...args);
    };

  program
    .command('validate')
    .argument('<config>', 'the JSON configuration file')
    .description('check a configuration file; every problem names its field and the fix')
    .option('--json', 'machine-readable output')
    .option(
      '--connect',
      'also check every job against its pools as xcr run does: SR, VMs, network map, vTPM support',
    )
    .action(action(async () => (await import('./commands/validate.js')).validateCommand));
  program
    .command('run')
    .description('run a job once through the local workflow runner (or follow its schedule with --watch)')
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'the job (default: the only one)')
    .option('--watch', 'keep running on the job schedule (rate schedules)')
    .option('--cycles <n>', 'with --watch: stop after n scheduled runs')
    .option('--json', 'one JSON run result per line')
    .option('-v, --verbose', 'step logs (JSON lines) on stderr')
    .action(action(async () => (await import('./commands/run.js')).runCommand));
  program
    .command('status')
    .description('recent local runs, newest recovery point and replication lag per VM')
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'only this job')
    .option('--json', 'machine-readable output')
    .action(
      action(async () => {
        const { statusCommand } = await import('./commands/inspect.js');
        return (opts: { config: string; job?: string; json?: boolean }) => statusCommand(opts.job, opts);
      }),
    );
  program
    .command('recovery-points')
    .argument('[job]', 'the job (default: the only one)')
    .description("list a job's recovery points on the destination, newest first")
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('--json', 'machine-readable output')
    .action(action(async () => (await import('./commands/inspect.js')).recoveryPointsCommand));
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
    .action(action(async () => (await import('./commands/drill.js')).drillCommand));
  program
    .command('failover')
    .argument('[job]', 'the job (default: the only one)')
    .description(
      "start the DR copies of the job's VMs at the destination from their newest recovery points (or undo it with --undo)",
    )
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('--vm <uuid...>', 'only these source VMs (default: every VM of the job)')
    .option('--point <uuid>', 'this recovery point instead of the newest')
    .option('--planned', 'both sites up: fence and shut the source down, send a final delta, then fail over')
    .option('--no-start', 'leave the DR copy halted')
    .option(
      '--force',
      'unplanned failover although the source VM runs and answers (split brain: you accept it)',
    )
    .option('--undo', 'destroy the DR copy, lift the fence, resume replication (needs --vm)')
    .option('--yes', 'with --undo: do not ask for confirmation')
    .option('--json', 'machine-readable output')
    .option('-v, --verbose', 'step logs (JSON lines) on stderr')
    .action(action(async () => (await import('./commands/failover.js')).failoverCommand));
  program
    .command('failback')
    .argument('[job]', 'the job (default: the only one)')
    .description(
      'send what changed at DR back into the original VM (a pre-sync); with --planned shut the DR copy down, send the rest, and move the VM back',
    )
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .requiredOption('--vm <uuid>', 'the failed-over source VM')
    .option(
      '--planned',
      'shut the DR copy down, send the final delta, put the disks back under the original VM and start it',
    )
    .option(
      '--sr <uuid-or-name>',
      'source-pool SR for disks the failback creates where the original VM has none (it or its base is gone; default: the pool default SR)',
    )
    .option('--json', 'machine-readable output')
    .option('-v, --verbose', 'step logs (JSON lines) on stderr')
    .action(action(async () => (await import('./commands/failover.js')).failbackCommand));
  program
    .command('clone')
    .argument('<recovery-point>', 'uuid of a recovery point (see recovery-points)')
    .description(
      'make a startable VM from a recovery point (failover or test restore); the recovery point stays as it is',
    )
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('-j, --job <id>', 'the job whose destination holds it (default: the only one)')
    .option('--name <label>', 'name of the new VM')
    .option(
      '--new-macs',
      "give the VIFs new MAC addresses (a copy that runs beside its source); default: the source's MACs",
    )
    .option('--json', 'machine-readable output')
    .action(action(async () => (await import('./commands/inspect.js')).cloneCommand));

  program
    .command('unlock')
    .argument('[job]', 'the job (default: the only one)')
    .description('clear the local lease a crashed run left (refused while that run is alive)')
    .requiredOption('-c, --config <file>', 'the JSON configuration file')
    .option('--force', 'also when the holder ran on another host (make sure it is not running)')
    .option('--json', 'machine-readable output')
    .action(action(async () => (await import('./commands/unlock.js')).unlockCommand));

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
