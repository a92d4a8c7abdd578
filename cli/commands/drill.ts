import type { DrillReport } from '../../functions/replication/drill/contract.js';
import { isReport, localDrillRunner } from '../drill-job.js';
import { defaultStateDir, jsonLogger, localDeps } from '../local-deps.js';
import { EXIT, type GlobalOptions, jobOf, load, print, table } from './common.js';

export interface DrillOptions extends GlobalOptions {
  vm?: string;
  point?: string;
  verbose?: boolean;
}

export function describeDrill(r: DrillReport): string {
  const head = `drill ${r.drillRun} of job ${r.jobId}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`;
  if (r.results.length === 0) return head;
  return `${head}\n${table(
    ['RECOVERY POINT', 'SOURCE VM', 'RESULT', 'BOOT (S)', 'REASON'],
    r.results.map((x) => [
      x.recoveryPoint,
      x.vm,
      x.passed ? 'passed' : 'failed',
      x.bootSeconds ?? '-',
      x.passed ? '' : `${x.step}: ${x.reason ?? ''}`,
    ]),
  )}`;
}

/**
 * `xcr drill <job>`: one execution of the job's synthesized drill state machine through the local
 * runner: clones, isolates, boots and checks the newest recovery points, then removes the clones.
 */
export async function drillCommand(jobId: string | undefined, opts: DrillOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = localDeps({
    config,
    stateDir: defaultStateDir(),
    logger: jsonLogger(opts.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined),
  });
  const outcome = await localDrillRunner(config, job, deps).run({
    ...(opts.vm ? { vm: opts.vm } : {}),
    ...(opts.point ? { point: opts.point } : {}),
  });
  if (!isReport(outcome)) throw new Error('a drill started by hand is always due');
  print(opts, outcome, () => describeDrill(outcome));
  return outcome.status === 'passed' ? EXIT.ok : EXIT.runFailed;
}
