import type { RunResult } from '../../functions/replication/contract.js';
import type { DrillReport } from '../../functions/replication/drill/contract.js';
import { drillAfterRun, isReport, localDrillRunner } from '../drill-job.js';
import { defaultStateDir, jsonLogger, localDeps } from '../local-deps.js';
import { progressView } from '../progress.js';
import { localJobRunner } from '../run-job.js';
import { runSchedule, scheduleIntervalMs } from '../schedule.js';
import { EXIT, type GlobalOptions, jobOf, load } from './common.js';
import { describeDrill } from './drill.js';
import { renderRun } from './inspect-format.js';
import { exitFor, preflightJob } from './validate.js';

export interface RunOptions extends GlobalOptions {
  job?: string;
  watch?: boolean;
  cycles?: string;
  verbose?: boolean;
}

/**
 * `xcr run`: one run of a job (or, with --watch, runs on its schedule) through the local runner.
 * A job with a drill block drills as on AWS: after every Nth successful run (drill.every
 * { afterRuns }), or with --watch on the drill's own rate schedule.
 */
export async function runCommand(opts: RunOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, opts.job);
  const stateDir = defaultStateDir();
  const view = opts.json ? undefined : progressView();
  const deps = localDeps({
    config,
    stateDir,
    progress: view?.update,
    logger: jsonLogger(opts.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined),
  });
  const problems = await preflightJob(config, job, deps.resolvePassword);
  if (problems.length) {
    view?.stop();
    return exitFor(problems);
  }
  const runner = localJobRunner(config, job, deps, stateDir);
  const drills = job.drill ? localDrillRunner(config, job, deps) : undefined;
  const results: RunResult[] = [];
  const drilled: DrillReport[] = [];
  const reportDrill = (outcome: Awaited<ReturnType<typeof drillAfterRun>>) => {
    if (!outcome || !isReport(outcome)) return;
    drilled.push(outcome);
    process.stdout.write(opts.json ? `${JSON.stringify(outcome)}\n` : `${describeDrill(outcome)}\n`);
  };
  const report = async (run: RunResult) => {
    results.push(run);
    view?.stop(); // the summary goes below the bars, never over them
    process.stdout.write(opts.json ? `${JSON.stringify(run)}\n` : `${renderRun(run)}\n`);
    if (drills) reportDrill(await drillAfterRun(job, drills, run));
  };
  try {
    if (opts.watch) {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      const every = job.drill?.every;
      if (every && 'cron' in every)
        process.stderr.write(
          'drill.every is a cron schedule, which --watch does not follow (EventBridge Scheduler does on AWS); run "xcr drill" by hand\n',
        );
      const drillLoop =
        drills && every && 'rate' in every
          ? runSchedule({
              intervalMs: scheduleIntervalMs(every),
              cycles: Number.POSITIVE_INFINITY,
              signal: abort.signal,
              // the first drill one drill interval after the start, as a new schedule would fire
              onTick: async (tick) => {
                if (tick > 0) reportDrill(await drills.run());
              },
            })
          : undefined;
      try {
        await runSchedule({
          intervalMs: scheduleIntervalMs(job.schedule),
          cycles: opts.cycles ? Number(opts.cycles) : Number.POSITIVE_INFINITY,
          signal: abort.signal,
          onTick: async (_tick, at) => report(await runner.run(at)),
        });
      } finally {
        abort.abort();
        await drillLoop;
      }
    } else {
      await report(await runner.run());
    }
  } finally {
    view?.stop();
  }
  const runFailed = results.some((r) => r.status === 'failed' || r.status === 'partial');
  return runFailed || drilled.some((d) => d.status === 'failed') ? EXIT.runFailed : EXIT.ok;
}
