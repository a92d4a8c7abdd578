import { isReport, localDrillRunner } from '../drill-job.js';
import { commandDeps, EXIT, type GlobalOptions, jobOf, load, print } from './common.js';
import { renderDrill } from './inspect-format.js';

export interface DrillOptions extends GlobalOptions {
  vm?: string;
  point?: string;
  verbose?: boolean;
}

/** The drill report as printed (80 columns). */
export const describeDrill = renderDrill;

/**
 * `xcr drill <job>`: one execution of the job's synthesized drill state machine through the local
 * runner: clones, isolates, boots and checks the newest recovery points, then removes the clones.
 */
export async function drillCommand(jobId: string | undefined, opts: DrillOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  const outcome = await localDrillRunner(config, job, deps).run({
    ...(opts.vm ? { vm: opts.vm } : {}),
    ...(opts.point ? { point: opts.point } : {}),
  });
  if (!isReport(outcome)) throw new Error('a drill started by hand is always due');
  print(opts, outcome, () => describeDrill(outcome));
  return outcome.status === 'passed' ? EXIT.ok : EXIT.runFailed;
}
