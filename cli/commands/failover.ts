import { createInterface } from 'node:readline/promises';
import type { FailoverReport, Listed } from '../../functions/replication/failover/contract.js';
import { localFailoverRunner } from '../failover-job.js';
import {
  CliProblem,
  commandDeps,
  EXIT,
  type GlobalOptions,
  jobOf,
  load,
  mb,
  print,
  table,
} from './common.js';

export interface FailoverCliOptions extends GlobalOptions {
  vm?: string[];
  point?: string;
  planned?: boolean;
  start?: boolean;
  force?: boolean;
  undo?: boolean;
  yes?: boolean;
  verbose?: boolean;
}

const runId = (what: string) => `${what}-${new Date().toISOString().replace(/[-:.]/g, '')}`;

export function describeFailover(r: FailoverReport): string {
  const rows = r.vms.map((v) => [
    v.vm,
    v.status,
    v.copy ?? '-',
    v.point ?? '-',
    [v.message, ...v.warnings].filter(Boolean).join('; '),
  ]);
  return `${table(['SOURCE VM', 'RESULT', 'DR COPY', 'RECOVERY POINT', 'NOTE'], rows)}${describeRemoved(r.removed)}`;
}

/** The leftovers a run removed: the first ones named, the rest counted (the logs name them all). */
export function describeRemoved(removed: Listed): string {
  if (!removed.count) return '';
  const more = removed.count - removed.items.length;
  return `\nremoved: ${removed.items.join(', ')}${more ? ` and ${more} more (named in the logs)` : ''}`;
}

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/**
 * `xcr failover <job>` and `xcr failover --undo <job> --vm <uuid>`: one execution of the job's
 * failover state machine as CDK synthesizes it, run locally (on AWS the same machine is started by hand).
 */
export async function failoverCommand(jobId: string | undefined, opts: FailoverCliOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  const machines = localFailoverRunner(config, job, deps);
  if (opts.undo) {
    const vm = opts.vm?.length === 1 ? opts.vm[0]! : undefined;
    if (!vm)
      throw new CliProblem('--undo needs exactly one --vm <uuid> (the failed-over source VM)', EXIT.badInput);
    if (
      !opts.yes &&
      !(await confirm(`undo the failover of ${vm}: the DR copy and everything written to it are destroyed?`))
    )
      throw new CliProblem('undo not confirmed: answer "y", or pass --yes', EXIT.badInput);
    const report = await machines.failover(runId('undo'), { undo: { vm } });
    print(opts, report, () => `undo ${report.run} of job ${job.id}\n${describeFailover(report)}`);
    return EXIT.ok;
  }
  const report = await machines.failover(runId('failover'), {
    ...(opts.vm?.length ? { vms: opts.vm } : {}),
    ...(opts.point !== undefined ? { point: opts.point } : {}),
    ...(opts.planned !== undefined ? { planned: opts.planned } : {}),
    ...(opts.start !== undefined ? { start: opts.start } : {}),
    ...(opts.force !== undefined ? { force: opts.force } : {}),
  });
  print(
    opts,
    report,
    () =>
      `${report.planned ? 'planned ' : ''}failover ${report.run} of job ${job.id}\n${describeFailover(report)}`,
  );
  const refused = report.vms.filter((v) => v.status === 'refused');
  if (refused.some((v) => v.code !== 'SOURCE_UNREACHABLE')) return EXIT.badInput;
  if (refused.length) return EXIT.unreachable;
  return report.vms.every((v) => v.status === 'failed-over') ? EXIT.ok : EXIT.runFailed;
}

export interface FailbackCliOptions extends GlobalOptions {
  vm: string;
  planned?: boolean;
  sr?: string;
  verbose?: boolean;
}

/** `xcr failback <job> --vm <uuid> [--planned]`: one execution of the job's failback state machine, locally. */
export async function failbackCommand(jobId: string | undefined, opts: FailbackCliOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  const report = await localFailoverRunner(config, job, deps).failback(runId('failback'), {
    vm: opts.vm,
    ...(opts.planned !== undefined ? { planned: opts.planned } : {}),
    ...(opts.sr !== undefined ? { sr: opts.sr } : {}),
  });
  print(opts, report, () => {
    const lines = [
      `failback ${report.run} of VM ${report.vm} (job ${job.id}): ${report.status}, ${mb(report.bytes)} MB sent`,
    ];
    if (report.status === 'synced')
      lines.push('the DR copy keeps running; run again with --planned to move the VM back');
    if (report.recoveryPoint) lines.push(`recovery point of the final state: ${report.recoveryPoint}`);
    if (report.newVm) lines.push(`new VM in place of the gone original: ${report.newVm}`);
    lines.push(...report.warnings.map((w) => `warning: ${w}`));
    if (report.replacedDisks?.length)
      lines.push(
        `previous disks kept detached (delete them once checked): ${report.replacedDisks.join(', ')}`,
      );
    return `${lines.join('\n')}${describeRemoved(report.removed)}`;
  });
  return EXIT.ok;
}
