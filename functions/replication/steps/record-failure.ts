import type { RunContext } from '../context.js';
import type { RecordFailureInput, VmResult } from '../contract.js';
import { failedVmResult } from '../run-results.js';

/**
 * A VM whose commit and rollback both failed: its result (both errors) goes to the run store.
 * A store failure here fails the step (the state machine retries it, then counts the VM `no-result`).
 */
export async function recordFailure(ctx: RunContext, input: RecordFailureInput): Promise<VmResult> {
  const result = failedVmResult(input);
  await ctx.runs.putResult(input.runId, input.index, result);
  ctx.logger.error('VM failed and its rollback failed too', {
    vmUuid: input.vmUuid,
    errorCode: result.errorCode,
    error: result.message,
  });
  return result;
}
