/**
 * One recovery drill of a job: for each point to drill, clone-point → isolate → boot → check, and
 * teardown always (whatever failed). The drill holds its own lease (`drill:<job>`), never the
 * job's, so it neither blocks nor is blocked by a replication run; the replication run's retention
 * keeps any point a drill clone exists for (`rules/drill.ts`), and its sweep removes a crashed
 * drill's clones only while it holds the drill lease itself (so never a live drill's).
 */
import type { DrillConfig } from '../../config/schema.js';
import type { Xapi } from '../../xapi/index.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import { listRecoveryPoints } from '../recovery-points.js';
import { type DrillResult, formatDrillResult, pointsToDrill } from '../rules/drill.js';
import { boot, clonePoint, isolate, recordResult, waitForCheck } from './steps.js';
import { removeDrillClones } from './teardown.js';

export const DRILL_DEFAULTS: DrillConfig = {
  every: { afterRuns: 1 },
  network: 'none',
  check: 'tools',
  timeoutMinutes: 10,
  concurrency: 1,
  alarmDays: 7,
};

export function drillLeaseKey(jobId: string): string {
  return `drill:${jobId}`;
}

export interface DrillPointResult {
  recoveryPoint: string;
  vm: string;
  passed: boolean;
  bootSeconds?: number;
  reason?: string;
  /** The step that failed, when one did. */
  step?: 'clone-point' | 'isolate' | 'boot' | 'check';
}

export interface DrillReport {
  jobId: string;
  drillRun: string;
  results: DrillPointResult[];
  /** Objects teardown and the leftover sweep removed. */
  removed: string[];
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function drillOne(
  ctx: RunContext,
  dest: Xapi,
  drillRun: string,
  rp: { uuid: string; vm: string },
  cfg: DrillConfig,
  pollMs: number,
): Promise<DrillPointResult> {
  const base = { recoveryPoint: rp.uuid, vm: rp.vm };
  let step: DrillPointResult['step'] = 'clone-point';
  try {
    const clone = await clonePoint(dest, ctx.job.id, drillRun, rp.uuid);
    step = 'isolate';
    await isolate(dest, ctx.job.id, drillRun, clone, cfg.network);
    step = 'boot';
    const startedAt = ctx.now().getTime();
    await boot(dest, ctx.job.id, drillRun, clone);
    step = 'check';
    const r = await waitForCheck(dest, clone, cfg.check, {
      timeoutMs: cfg.timeoutMinutes * 60_000,
      pollMs,
      now: () => ctx.now().getTime(),
      startedAt,
    });
    return r.passed
      ? { ...base, passed: true, bootSeconds: r.bootSeconds }
      : { ...base, passed: false, reason: r.reason, step };
  } catch (err) {
    return { ...base, passed: false, reason: message(err), step };
  }
}

/** Runs a drill to its end; only a failure to take the lease or find points throws. */
export async function runDrill(
  ctx: RunContext,
  o: { drillRun: string; vm?: string; point?: string; pollMs?: number },
): Promise<DrillReport> {
  const cfg = ctx.job.drill ?? DRILL_DEFAULTS;
  const ttl = (cfg.timeoutMinutes + 15) * 60_000;
  const lease = await ctx.leases.acquire(drillLeaseKey(ctx.job.id), o.drillRun, ttl);
  if (!lease.acquired)
    throw new XcrPermanentError(
      'DRILL_RUNNING',
      `drill ${lease.holder} of job ${ctx.job.id} is still running (lease until ${lease.expiresAt.toISOString()})`,
    );
  const dest = await ctx.destination();
  const report: DrillReport = { jobId: ctx.job.id, drillRun: o.drillRun, results: [], removed: [] };
  try {
    report.removed.push(...(await removeDrillClones(dest, ctx.job.id, { liveRun: o.drillRun })));
    const rps = await listRecoveryPoints(dest, ctx.job.id);
    const points = pointsToDrill(
      rps.map((r) => r.rec),
      o,
    );
    if (points.length === 0)
      throw new XcrPermanentError(
        'NO_RECOVERY_POINT',
        o.point
          ? `${o.point} is not a complete recovery point of job ${ctx.job.id} (see "xcr recovery-points")`
          : `job ${ctx.job.id} has no complete recovery point${o.vm ? ` of VM ${o.vm}` : ''} to drill yet`,
      );
    for (let i = 0; i < points.length; i += cfg.concurrency) {
      const batch = points.slice(i, i + cfg.concurrency);
      try {
        const results = await Promise.all(
          batch.map((p) =>
            drillOne(
              ctx,
              dest,
              o.drillRun,
              { uuid: p.uuid, vm: p.other_config['xcr:vm'] ?? '' },
              cfg,
              o.pollMs ?? 1000,
            ),
          ),
        );
        report.results.push(...results);
      } finally {
        report.removed.push(...(await removeDrillClones(dest, ctx.job.id, { only: o.drillRun })));
      }
    }
    const at = ctx.now().toISOString();
    for (const r of report.results) {
      const result: DrillResult = r.passed
        ? { passed: true, at, bootSeconds: r.bootSeconds ?? 0 }
        : { passed: false, at, reason: `${r.step}: ${r.reason}` };
      await recordResult(dest, r.recoveryPoint, formatDrillResult(result));
    }
    return report;
  } finally {
    await ctx.leases.release(drillLeaseKey(ctx.job.id), o.drillRun);
  }
}

/**
 * For a replication run's sweep: removes a crashed drill's clones, holding the drill lease while
 * it does (a live drill keeps it, so its clones are never touched; a drill starting meanwhile waits).
 */
export async function sweepDrillLeftovers(ctx: RunContext, dest: Xapi, runId: string): Promise<string[]> {
  const key = drillLeaseKey(ctx.job.id);
  const lease = await ctx.leases.acquire(key, runId, 5 * 60_000);
  if (!lease.acquired) return [];
  try {
    return await removeDrillClones(dest, ctx.job.id, {});
  } finally {
    await ctx.leases.release(key, runId);
  }
}
