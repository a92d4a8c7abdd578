import { loadConfigFile } from '../../functions/config/load.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import { PoolSessions } from '../../functions/replication/context.js';
import { type PreflightProblem, preflight } from '../../functions/replication/preflight.js';
import { estimateJob, estimateLine } from '../cost-estimate.js';
import { envPasswordResolver } from '../local-deps.js';
import { EXIT } from './common.js';

/** The checks `xcr run` makes before it changes anything; problems go to stderr. */
export async function preflightJob(
  config: XcrConfig,
  job: JobConfig,
  resolvePassword: (pool: string) => Promise<string>,
): Promise<PreflightProblem[]> {
  const sessions = new PoolSessions(config, resolvePassword);
  const problems = await preflight(config, job, sessions).finally(() => sessions.closeAll());
  for (const p of problems) process.stderr.write(`xcr: ${p.field}: ${p.message}\n`);
  return problems;
}

export function exitFor(problems: PreflightProblem[]): number {
  if (problems.length === 0) return EXIT.ok;
  return problems.some((p) => p.kind === 'unreachable') ? EXIT.unreachable : EXIT.badInput;
}

/**
 * `xcr validate <config>`: the file against the schema; with --connect also every job against its
 * pools (SR, VMs, network map, vTPM support), read-only.
 */
export async function validateCommand(
  file: string,
  opts: { json?: boolean; connect?: boolean },
): Promise<number> {
  const config = loadConfigFile(file);
  const problems: PreflightProblem[] = [];
  if (opts.connect) {
    for (const job of config.jobs)
      problems.push(...(await preflightJob(config, job, envPasswordResolver(config))));
  }
  const estimates = config.jobs.map(estimateJob);
  const summary = {
    valid: problems.length === 0,
    pools: Object.keys(config.pools),
    jobs: config.jobs.map((j) => j.id),
    ...(opts.connect ? { problems } : {}),
    monthlyCost: estimates,
  };
  process.stdout.write(
    opts.json
      ? `${JSON.stringify(summary)}\n`
      : `${file}: ${summary.valid ? 'valid' : `${problems.length} problem(s)`} (${summary.jobs.length} job(s): ${summary.jobs.join(', ')})\nmonthly AWS cost estimate:\n${estimates.map(estimateLine).join('')}`,
  );
  return exitFor(problems);
}
