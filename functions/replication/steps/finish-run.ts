import { leaseKey, type RunContext } from '../context.js';
import type { FinishRunInput, RunSummary } from '../contract.js';
import { failureCode } from '../errors.js';
import { applyRetention } from '../recovery-points.js';
import { summarizeRun } from '../run-results.js';

/** Retention of the VMs this run committed, while the run still holds the lease; best effort (a
 *  point left over is deleted by the VM's next successful run), so the lease is released anyway. */
async function expireOldPoints(ctx: RunContext, committed: string[]): Promise<void> {
  if (committed.length === 0) return;
  try {
    const { expired, failed } = await applyRetention(
      await ctx.destination(),
      ctx.job.id,
      committed,
      ctx.job.retention,
    );
    if (expired.length) ctx.logger.info('expired recovery points', { expiredRecoveryPoints: expired });
    for (const f of failed) {
      const { code, message } = failureCode({
        Error: (f.error as Error).name,
        Cause: (f.error as Error).message,
      });
      ctx.logger.warn('retention failed; the next run retries it', {
        vmUuid: f.vmUuid,
        errorCode: code,
        error: message,
      });
    }
  } catch (err) {
    ctx.logger.warn('retention failed; the next run retries it', { error: (err as Error).message });
  }
}

/**
 * Ends a run: reads every VM's outcome back from the run store (page by page), expires the recovery
 * points beyond retention of the VMs it committed, releases the lease (if this run holds it),
 * publishes the run's summary as its event and returns it.
 */
export async function finishRun(ctx: RunContext, input: FinishRunInput): Promise<RunSummary> {
  // uuids only (36 bytes a VM) are held here, never in a state; the store is read once for both
  const committed: string[] = [];
  const summary = await summarizeRun(ctx.runs, input, ctx.now().toISOString(), (vm) => {
    if (vm.status === 'succeeded') committed.push(vm.vmUuid);
  });
  if (input.batchFailure) {
    ctx.logger.error('a batch execution failed as a whole; its VMs without a result count as failed', {
      error: input.batchFailure.Error,
    });
  }
  if (input.status !== 'skipped') {
    // one listing of the destination for the whole run
    await expireOldPoints(ctx, committed);
    await ctx.leases.release(leaseKey(ctx.job.id), input.runId);
  }
  await ctx.events.publish(summary);
  ctx.logger.info(`run ${summary.status}`, {
    status: summary.status,
    bytes: summary.bytes,
    vms: summary.vmCount,
    failed: summary.failed,
  });
  return summary;
}
