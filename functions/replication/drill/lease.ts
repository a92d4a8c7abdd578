/**
 * What drills and replication runs share about drills: the defaults, the drill's own lease
 * (`drill:<job>`, never the job's, so a drill neither blocks nor is blocked by a run), and the run's
 * sweep of crashed drills' clones. The replication run's retention keeps any point a drill clone
 * exists for (`rules/drill.ts`); its sweep removes a crashed drill's clones only while it holds the
 * drill lease itself (so never a live drill's). The drill's steps are in `flow.ts`.
 */
import type { DrillConfig } from '../../config/schema.js';
import type { Xapi } from '../../xapi/index.js';
import type { PoolRecords } from '../cleanup.js';
import type { RunContext } from '../context.js';
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

/**
 * For a replication run's sweep: removes a crashed drill's clones, holding the drill lease while
 * it does (a live drill keeps it, so its clones are never touched; a drill starting meanwhile is
 * refused with DRILL_RUNNING for these few calls and runs at its next schedule).
 */
export async function sweepDrillLeftovers(
  ctx: RunContext,
  dest: Xapi,
  runId: string,
  records?: PoolRecords,
): Promise<string[]> {
  const key = drillLeaseKey(ctx.job.id);
  const lease = await ctx.leases.acquire(key, runId, 5 * 60_000);
  if (!lease.acquired) return [];
  try {
    return await removeDrillClones(dest, ctx.job.id, {}, records);
  } finally {
    await ctx.leases.release(key, runId);
  }
}
