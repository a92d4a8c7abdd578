import type { RunResult } from '../../functions/replication/contract.js';
import { defaultStateDir, jsonLogger, localDeps } from '../local-deps.js';
import { progressView } from '../progress.js';
import { localJobRunner } from '../run-job.js';
import { runSchedule, scheduleIntervalMs } from '../schedule.js';
import { EXIT, type GlobalOptions, jobOf, load } from './common.js';
import { renderRun } from './inspect-format.js';
import { exitFor, preflightJob } from './validate.js';

export interface RunOptions extends GlobalOptions {
  job?: string;
  watch?: boolean;
  cycles?: string;
  verbose?: boolean;
}

/** `xcr run`: one run of a job (or, with --watch, runs on its schedule) through the local runner. */
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
  const results: RunResult[] = [];
  const report = (run: RunResult) => {
    results.push(run);
    view?.stop(); // the summary goes below the bars, never over them
    process.stdout.write(opts.json ? `${JSON.stringify(run)}\n` : `${renderRun(run)}\n`);
  };
  try {
    if (opts.watch) {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      await runSchedule({
        intervalMs: scheduleIntervalMs(job.schedule),
        cycles: opts.cycles ? Number(opts.cycles) : Number.POSITIVE_INFINITY,
        signal: abort.signal,
        onTick: async (_tick, at) => report(await runner.run(at)),
      });
    } else {
      report(await runner.run());
    }
  } finally {
    view?.stop();
  }
  return results.some((r) => r.status === 'failed' || r.status === 'partial') ? EXIT.runFailed : EXIT.ok;
}
