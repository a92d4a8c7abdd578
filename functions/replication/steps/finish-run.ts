import { leaseKey, type RunContext } from '../context.js';
import type { FinishRunInput, RunResult, RunStatus, VmFailedResult, VmResult } from '../contract.js';
import { failureCode } from '../errors.js';

function runStatus(input: FinishRunInput, vms: VmResult[]): RunStatus {
  if (input.status === 'skipped') return 'skipped';
  const failed = vms.filter((v) => v.status === 'failed').length;
  if (failed === 0) return 'succeeded';
  return failed === vms.length ? 'failed' : 'partial';
}

/** Ends a run: releases the lease (if this run holds it), reports the run and publishes its event. */
/** A VM result the state machine made itself (vm-failed: the rollback failed) in the steps' terms. */
function fromStateMachine(r: VmResult | VmFailedResult): VmResult {
  if (!('failure' in r) || !r.failure) return r;
  const { code, message } = failureCode(r.failure);
  const rollback = failureCode(r.rollbackFailure);
  return {
    vmUuid: r.vmUuid,
    status: 'failed',
    bytes: 0,
    durationMs: 0,
    errorCode: code,
    message: `${message}; the rollback failed too (${rollback.code}: ${rollback.message}), the next run removes what is left`,
  };
}

export async function finishRun(ctx: RunContext, input: FinishRunInput): Promise<RunResult> {
  const vms: VmResult[] = (input.results ?? []).map(fromStateMachine);
  if (input.mapFailure) {
    const { code, message } = failureCode(input.mapFailure);
    for (const item of input.vms) {
      if (!vms.some((v) => v.vmUuid === item.vmUuid)) {
        vms.push({
          vmUuid: item.vmUuid,
          status: 'failed',
          bytes: 0,
          durationMs: 0,
          errorCode: code,
          message,
        });
      }
    }
  }
  if (input.status !== 'skipped') await ctx.leases.release(leaseKey(ctx.job.id), input.runId);
  const result: RunResult = {
    jobId: input.jobId,
    runId: input.runId,
    status: runStatus(input, vms),
    startedAt: input.startedAt,
    finishedAt: ctx.now().toISOString(),
    bytes: vms.reduce((sum, v) => sum + v.bytes, 0),
    vms,
    ...(input.reason ? { reason: input.reason } : {}),
    ...(input.skippedVms?.length ? { skippedVms: input.skippedVms } : {}),
  };
  await ctx.events.publish(result);
  ctx.logger.info(`run ${result.status}`, { status: result.status, bytes: result.bytes, vms: vms.length });
  return result;
}
