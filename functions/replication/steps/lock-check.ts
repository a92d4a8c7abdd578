import { snapshotsWithRecoveryPoints, sweep, sweepRecords } from '../cleanup.js';
import { LEASE_TTL_MS, leaseKey, type RunContext } from '../context.js';
import {
  type LockCheckInput,
  type LockCheckOutput,
  MAX_REPORTED_FAILURES,
  type SkippedVm,
} from '../contract.js';
import { sweepDrillLeftovers } from '../drill/lease.js';
import { keptRuns, sweepFailoverLeftovers } from '../failover/copy.js';
import { vmsWithTag } from '../inventory.js';
import { KEY } from '../metadata.js';
import { failedOverVms } from '../rules/failover.js';
import { batchPlan } from '../run-results.js';

/** The job's VMs, less those failed over to the destination (replicating an old source over a live
 *  DR copy's base would be wrong): they are reported as skipped, "failed over …". */
async function selectVms(ctx: RunContext): Promise<{ uuids: string[]; skipped: SkippedVm[] }> {
  const [selected, source, destination] = await Promise.all([
    selectedVms(ctx),
    ctx.source(),
    ctx.destination(),
  ]);
  const failedOver = failedOverVms({
    jobId: ctx.job.id,
    destination: (await sweepRecords(destination)).vms,
    source: (await sweepRecords(source)).vms,
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

/** Removes what interrupted runs of this job left on both sides (best effort, logged). */
async function sweepLeftovers(ctx: RunContext, runId: string): Promise<void> {
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const scope = { except: runId };
  // one listing of the destination serves both: which snapshots have points, and its own sweep
  const destRecords = await sweepRecords(destination);
  const completed = snapshotsWithRecoveryPoints(destRecords.vms, ctx.job.id);
  const src = await sweep(source, ctx.job.id, scope, completed);
  const dst = await sweep(destination, ctx.job.id, scope, undefined, destRecords);
  const drills = await sweepDrillLeftovers(ctx, destination, runId);
  // the job lease is held, so no failover or failback run is live: what theirs no record keeps goes
  const keep = await keptRuns(destination, ctx.job.id);
  const failover = [
    ...(await sweepFailoverLeftovers(destination, ctx.job.id, { keep })),
    ...(await sweepFailoverLeftovers(source, ctx.job.id, { keep })),
  ];
  const removed = [...src.destroyed, ...dst.destroyed, ...drills, ...failover];
  if (removed.length || src.promoted.length) {
    ctx.logger.warn('removed leftovers of interrupted runs', { removed, promoted: src.promoted });
  }
  const notOurs = [...new Set([...src.reported, ...dst.reported])];
  if (notOurs.length) ctx.logger.info('left alone: not provably this job’s', { objects: notOurs });
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
    await sweepLeftovers(ctx, input.runId);
    const { uuids, skipped } = await selectVms(ctx);
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
