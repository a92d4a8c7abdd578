import { createInterface } from 'node:readline/promises';
import { withRunContext } from '../../functions/handlers/steps.js';
import { runFailback } from '../../functions/replication/failback/run.js';
import { type FailoverReport, runFailover, undoFailover } from '../../functions/replication/failover/run.js';
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
  const removed = r.removed.length ? `\nremoved: ${r.removed.join(', ')}` : '';
  return `${table(['SOURCE VM', 'RESULT', 'DR COPY', 'RECOVERY POINT', 'NOTE'], rows)}${removed}`;
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

/** `xcr failover <job>` and `xcr failover --undo <job> --vm <uuid>`. */
export async function failoverCommand(jobId: string | undefined, opts: FailoverCliOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  if (opts.undo) {
    const vm = opts.vm?.length === 1 ? opts.vm[0]! : undefined;
    if (!vm)
      throw new CliProblem('--undo needs exactly one --vm <uuid> (the failed-over source VM)', EXIT.badInput);
    if (
      !opts.yes &&
      !(await confirm(`undo the failover of ${vm}: the DR copy and everything written to it are destroyed?`))
    )
      throw new CliProblem('undo not confirmed: answer "y", or pass --yes', EXIT.badInput);
    const report = await withRunContext(deps, job.id, (ctx) => undoFailover(ctx, { run: runId('undo'), vm }));
    print(opts, report, () => `undo ${report.run} of job ${job.id}\n${describeFailover(report)}`);
    return EXIT.ok;
  }
  const report = await withRunContext(deps, job.id, (ctx) =>
    runFailover(ctx, {
      run: runId('failover'),
      vms: opts.vm,
      point: opts.point,
      planned: opts.planned,
      start: opts.start,
      force: opts.force,
    }),
  );
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

/** `xcr failback <job> --vm <uuid> [--planned]`. */
export async function failbackCommand(jobId: string | undefined, opts: FailbackCliOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  const report = await withRunContext(deps, job.id, (ctx) =>
    runFailback(ctx, { run: runId('failback'), vm: opts.vm, planned: opts.planned, sr: opts.sr }),
  );
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
    return lines.join('\n');
  });
  return EXIT.ok;
}
