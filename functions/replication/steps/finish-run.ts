import { leaseKey, type RunContext } from '../context.js';
import type { FinishRunInput, RunSummary } from '../contract.js';
import { summarizeRun } from '../run-results.js';

/**
 * Ends a run: reads every VM's outcome back from the run store (page by page), releases the lease
 * (if this run holds it), publishes the run's summary as its event and returns it.
 */
export async function finishRun(ctx: RunContext, input: FinishRunInput): Promise<RunSummary> {
  const summary = await summarizeRun(ctx.runs, input, ctx.now().toISOString());
  if (input.batchFailure) {
    ctx.logger.error('a batch execution failed as a whole; its VMs without a result count as failed', {
      error: input.batchFailure.Error,
    });
  }
  if (input.status !== 'skipped') await ctx.leases.release(leaseKey(ctx.job.id), input.runId);
  await ctx.events.publish(summary);
  ctx.logger.info(`run ${summary.status}`, {
    status: summary.status,
    bytes: summary.bytes,
    vms: summary.vmCount,
    failed: summary.failed,
  });
  return summary;
}
