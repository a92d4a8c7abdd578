import { createInterface } from 'node:readline/promises';
import { withRunContext } from '../../functions/handlers/steps.js';
import { type FailoverReport, runFailover, undoFailover } from '../../functions/replication/failover/run.js';
import { defaultStateDir, jsonLogger, localDeps } from '../local-deps.js';
import { CliProblem, EXIT, type GlobalOptions, jobOf, load, print, table } from './common.js';

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
  const deps = localDeps({
    config,
    stateDir: defaultStateDir(),
    logger: jsonLogger(opts.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined),
  });
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
  if (report.vms.some((v) => v.status === 'refused')) return EXIT.badInput;
  return report.vms.every((v) => v.status === 'failed-over') ? EXIT.ok : EXIT.runFailed;
}
