import {
  forgetRemoved,
  type PoolRecords,
  snapshotsWithRecoveryPoints,
  sweep,
  sweepRecords,
} from '../cleanup.js';
import { LEASE_TTL_MS, leaseKey, type RunContext } from '../context.js';
import {
  type LockCheckInput,
  type LockCheckOutput,
  MAX_REPORTED_FAILURES,
  type SkippedVm,
} from '../contract.js';
import { sweepDrillLeftovers } from '../drill/lease.js';
import { sweepFailoverLeftovers } from '../failover/copy.js';
import { vmsWithTag } from '../inventory.js';
import { KEY } from '../metadata.js';
import { failedOverVms, recordedRuns } from '../rules/failover.js';
import { batchPlan } from '../run-results.js';

/** The job's VMs, less those failed over to the destination (replicating an old source over a live
 *  DR copy's base would be wrong): they are reported as skipped, "failed over …". */
async function selectVms(
  ctx: RunContext,
  pools: Listings,
): Promise<{ uuids: string[]; skipped: SkippedVm[] }> {
  const selected = await selectedVms(ctx);
  const failedOver = failedOverVms({
    jobId: ctx.job.id,
    destination: pools.destination.vms,
    source: pools.source.vms,
  });
  return {
    uuids: selected.filter((vm) => !failedOver.has(vm)),
    skipped: selected.flatMap((vm) => {
      const why = failedOver.get(vm);
      return why ? [{ vmUuid: vm, reason: why }] : [];
    }),
  };
}

async function selectedVms(ctx: RunContext): Promise<string[]> {
  const { vms } = ctx.job;
  if ('uuids' in vms) return vms.uuids;
  const source = await ctx.source();
  return (await vmsWithTag(source, vms.tag))
    .filter((vm) => vm.other_config[KEY.job] !== ctx.job.id)
    .map((vm) => vm.uuid)
    .sort();
}

interface Listings {
  source: PoolRecords;
  destination: PoolRecords;
}

/**
 * Removes what interrupted runs of this job left on both sides (best effort, logged). Each pool is
 * listed once per run (VM and VDI records: at fleet scale the run's largest cost) and the
 * listing serves every sweep in turn, each one's removals dropped before the next reads it, then the
 * VM selection. A sweep's promotions (pending → exported snapshots) are not written back into it:
 * no later reader looks at a job snapshot's status.
 */
async function sweepLeftovers(ctx: RunContext, runId: string): Promise<Listings> {
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const jobId = ctx.job.id;
  const scope = { except: runId };
  let [src, dst] = await Promise.all([sweepRecords(source), sweepRecords(destination)]);
  const completed = snapshotsWithRecoveryPoints(dst.vms, jobId);
  const srcSweep = await sweep(source, jobId, scope, completed, src);
  src = forgetRemoved(src, srcSweep.destroyed);
  const dstSweep = await sweep(destination, jobId, scope, undefined, dst);
  dst = forgetRemoved(dst, dstSweep.destroyed);
  const drills = await sweepDrillLeftovers(ctx, destination, runId, dst);
  dst = forgetRemoved(dst, drills);
  // the job lease is held, so no failover or failback run is live: what theirs no record keeps goes
  const keep = recordedRuns(dst.vms, jobId);
  const foDst = await sweepFailoverLeftovers(destination, jobId, { keep, records: dst });
  dst = forgetRemoved(dst, foDst);
  const foSrc = await sweepFailoverLeftovers(source, jobId, { keep, records: src });
  src = forgetRemoved(src, foSrc);
  const removed = [...srcSweep.destroyed, ...dstSweep.destroyed, ...drills, ...foDst, ...foSrc];
  if (removed.length || srcSweep.promoted.length) {
    ctx.logger.warn('removed leftovers of interrupted runs', { removed, promoted: srcSweep.promoted });
  }
  const notOurs = [...new Set([...srcSweep.reported, ...dstSweep.reported])];
  if (notOurs.length) ctx.logger.info('left alone: not provably this job’s', { objects: notOurs });
  return { source: src, destination: dst };
}

/**
 * Takes the job's lease or ends the run as skipped (a run never queues behind another), then
 * sweeps leftovers of interrupted runs and writes the VMs to replicate to the run store.
 */
export async function lockCheck(ctx: RunContext, input: LockCheckInput): Promise<LockCheckOutput> {
  const startedAt = ctx.now().toISOString();
  const base = { jobId: ctx.job.id, runId: input.runId, startedAt };
  const lease = await ctx.leases.acquire(leaseKey(ctx.job.id), input.runId, LEASE_TTL_MS);
  if (!lease.acquired) {
    const who = lease.holderInfo
      ? ` on host ${lease.holderInfo.host}, pid ${lease.holderInfo.pid}, since ${lease.holderInfo.since}`
      : '';
    const unlock = lease.holderInfo
      ? `; if it is not, clear the lease with \`xcr unlock ${ctx.job.id}\``
      : '';
    const reason = `run ${lease.holder} of job ${ctx.job.id} is still running${who} (lease until ${lease.expiresAt.toISOString()})${unlock}`;
    ctx.logger.info('run skipped', { reason });
    return { ...base, status: 'skipped', reason, ...batchPlan(0) };
  }
  if (lease.tookOverFrom) {
    const { owner, holder } = lease.tookOverFrom;
    ctx.logger.warn('took over the lease of a run that died', {
      deadRun: owner,
      host: holder.host,
      pid: holder.pid,
      since: holder.since,
    });
  }
  try {
    const listings = await sweepLeftovers(ctx, input.runId);
    const { uuids, skipped } = await selectVms(ctx, listings);
    for (const s of skipped) ctx.logger.info('VM skipped', { vmUuid: s.vmUuid, reason: s.reason });
    // The VM list goes to the run store, never into the state: the batches read it back by index.
    await ctx.runs.putWorkList(input.runId, uuids);
    return {
      ...base,
      status: 'acquired',
      ...batchPlan(uuids.length),
      // a count and the first few: a state never carries a list that grows with the job
      ...(skipped.length
        ? { skipped: skipped.length, skippedVms: skipped.slice(0, MAX_REPORTED_FAILURES) }
        : {}),
    };
  } catch (err) {
    await ctx.leases.release(leaseKey(ctx.job.id), input.runId);
    throw err;
  }
}
