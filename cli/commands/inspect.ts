import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cloneRecoveryPoint, recoveryPointsOf } from '../../functions/replication/clone-point.js';
import type { RunResult } from '../../functions/replication/contract.js';
import { parseDrillResult } from '../../functions/replication/rules/drill.js';
import { defaultStateDir } from '../local-deps.js';
import { type GlobalOptions, jobOf, load, print, withPool } from './common.js';
import { type JobStatusView, renderRecoveryPoints, renderStatus } from './inspect-format.js';

export async function recoveryPointsCommand(jobId: string | undefined, opts: GlobalOptions): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, jobId);
  const rps = await withPool(config, job.destination.pool, (xapi) => recoveryPointsOf(xapi, job.id));
  print(opts, rps, () => renderRecoveryPoints(job.id, rps, `-c ${opts.config}`));
  return 0;
}

function lastRuns(jobId: string, count: number): RunResult[] {
  const file = join(defaultStateDir(), `runs-${jobId}.jsonl`);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .slice(-count)
    .map((l) => JSON.parse(l) as RunResult);
}

/** The newest drill result among a VM's recovery points ('' when none was drilled). */
function lastDrill(values: string[]): string {
  const drilled = values.filter((v) => parseDrillResult(v) !== undefined);
  return drilled.sort((a, b) => parseDrillResult(b)!.at.localeCompare(parseDrillResult(a)!.at))[0] ?? '';
}

export async function statusCommand(jobId: string | undefined, opts: GlobalOptions): Promise<number> {
  const config = load(opts);
  const jobs = jobId ? [jobOf(config, jobId)] : config.jobs;
  const report: JobStatusView[] = [];
  for (const job of jobs) {
    const rps = await withPool(config, job.destination.pool, (xapi) => recoveryPointsOf(xapi, job.id));
    const newestByVm = new Map<string, string>();
    for (const rp of rps) if (!newestByVm.has(rp.sourceVm)) newestByVm.set(rp.sourceVm, rp.time);
    const now = Date.now();
    report.push({
      jobId: job.id,
      lastRuns: lastRuns(job.id, 5).map((r) => ({
        runId: r.runId,
        status: r.status,
        bytes: r.bytes,
        finishedAt: r.finishedAt,
      })),
      vms: [...newestByVm].map(([vm, time]) => ({
        vm,
        newestRecoveryPoint: time,
        lagMinutes: Math.round((now - Date.parse(time)) / 60_000),
        recoveryPoints: rps.filter((rp) => rp.sourceVm === vm).length,
        lastDrill: lastDrill(rps.filter((rp) => rp.sourceVm === vm).map((rp) => rp.drill)),
      })),
    });
  }
  print(opts, report, () => renderStatus(report, `-c ${opts.config}`));
  return 0;
}

export async function cloneCommand(
  recoveryPoint: string,
  opts: GlobalOptions & { job?: string; name?: string; newMacs?: boolean },
): Promise<number> {
  const config = load(opts);
  const job = jobOf(config, opts.job);
  const uuid = await withPool(config, job.destination.pool, (xapi) =>
    cloneRecoveryPoint(
      xapi,
      recoveryPoint,
      { pool: job.destination.pool, jobId: job.id },
      { name: opts.name, newMacs: opts.newMacs },
    ),
  );
  print(
    opts,
    { vm: uuid, clonedFrom: recoveryPoint },
    () => `cloned recovery point ${recoveryPoint} into VM ${uuid} (startable)`,
  );
  return 0;
}
