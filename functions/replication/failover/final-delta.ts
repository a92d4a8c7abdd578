import type { RunContext } from '../context.js';
import { asRunState, type VmResult, type VmRunState, vmResult } from '../contract.js';
import { XcrPermanentError } from '../errors.js';
import { commitOrRollback } from '../steps/commit-or-rollback.js';
import { snapshotPrevious } from '../steps/snapshot-previous.js';
import { streamDelta } from '../steps/stream-delta.js';

/**
 * One replication of one VM by the replication steps themselves (snapshot-previous, stream-delta
 * until done, commit-or-rollback), under the caller's run id and the job lease it holds: the final
 * delta of a planned failover. A failure is rolled back as in a run and thrown.
 */
export async function replicateVm(
  ctx: RunContext,
  item: { jobId: string; runId: string; vmUuid: string; startedAt: string },
): Promise<VmResult> {
  let state: VmRunState | undefined;
  let result: VmResult;
  // a one-VM run of its own: work-list index 0; its result record is removed once read here
  const work = { ...item, index: 0 };
  try {
    state = await snapshotPrevious(ctx, work);
    while (!state.done) state = await streamDelta(ctx, state);
    result = await commitOrRollback(ctx, state);
  } catch (err) {
    const e = err as Error;
    const failure = { Error: e.name, Cause: e.message };
    result = await commitOrRollback(ctx, { ...(state ?? asRunState({ ...work, failure })), failure });
  } finally {
    await ctx.runs.deleteRun(item.runId).catch(() => undefined);
  }
  return succeeded(result, item);
}

/** The committed final delta, or FINAL_DELTA_FAILED naming why and what to do. */
function succeeded(result: VmResult, item: { jobId: string; vmUuid: string }): VmResult {
  if (result.status !== 'succeeded')
    throw new XcrPermanentError(
      'FINAL_DELTA_FAILED',
      `the final delta of VM ${item.vmUuid} failed (${result.errorCode}: ${result.message}); the source VM stays shut down and fenced: retry the failover, or lift the fence with "xcr failover --undo ${item.jobId} --vm ${item.vmUuid}"`,
    );
  return result;
}

/**
 * In the failover state machine the final delta is a one-VM run of the job's batch machine under
 * the failover run id (work-list index 0, which `finalDeltaWorkList` wrote): its result is read
 * back here and the run's records removed.
 */
export async function finalDeltaResult(
  ctx: RunContext,
  item: { jobId: string; runId: string; vmUuid: string },
): Promise<VmResult> {
  const [stored] = await ctx.runs.readResults(item.runId, 0, 1);
  await ctx.runs.deleteRun(item.runId).catch(() => undefined);
  const result = stored ? vmResult.parse(stored.record) : undefined;
  if (!result || result.vmUuid !== item.vmUuid)
    return succeeded(
      {
        vmUuid: item.vmUuid,
        status: 'failed',
        bytes: 0,
        durationMs: 0,
        errorCode: 'RESULT_LOST',
        message: 'the final delta recorded no result',
      },
      item,
    );
  return succeeded(result, item);
}

/** The one-VM work list the batch machine reads for the final delta (index 0 = the VM). */
export async function finalDeltaWorkList(ctx: RunContext, runId: string, vmUuid: string): Promise<void> {
  await ctx.runs.deleteRun(runId);
  await ctx.runs.putWorkList(runId, [vmUuid]);
}
