import { withRunContext } from '../../functions/handlers/steps.js';
import { type DrillReport, runDrill } from '../../functions/replication/drill/run.js';
import { commandDeps, EXIT, type GlobalOptions, jobOf, load, print, table } from './common.js';

export interface DrillOptions extends GlobalOptions {
  vm?: string;
  point?: string;
  verbose?: boolean;
}

export function describeDrill(r: DrillReport): string {
  return table(
    ['RECOVERY POINT', 'SOURCE VM', 'RESULT', 'BOOT (S)', 'REASON'],
    r.results.map((x) => [
      x.recoveryPoint,
      x.vm,
      x.passed ? 'passed' : 'failed',
      x.bootSeconds ?? '-',
      x.passed ? '' : `${x.step}: ${x.reason ?? ''}`,
    ]),
  );
}

/** `xcr drill <job>`: clones, isolates, boots and checks the newest recovery points, then removes the clones. */
export async function drillCommand(jobId: string | undefined, opts: DrillOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const deps = commandDeps(config, opts.verbose);
  const drillRun = `drill-${new Date().toISOString().replace(/[-:.]/g, '')}`;
  const report = await withRunContext(deps, job.id, (ctx) =>
    runDrill(ctx, {
      drillRun,
      ...(opts.vm ? { vm: opts.vm } : {}),
      ...(opts.point ? { point: opts.point } : {}),
    }),
  );
  print(opts, report, () => `drill ${report.drillRun} of job ${job.id}\n${describeDrill(report)}`);
  return report.results.every((r) => r.passed) ? EXIT.ok : EXIT.runFailed;
}
