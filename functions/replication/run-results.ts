/**
 * The run's data in the run store, as the steps use it: batches of the work list, each VM's
 * recorded outcome, and the run's summary read back page by page (memory O(page), not O(VMs)).
 */
import type { RunStore } from '../runstore/port.js';
import { clipUtf8 } from './clip.js';
import {
  BATCH_SIZE,
  type FinishRunInput,
  type LoadBatchInput,
  type LoadBatchOutput,
  MAX_REPORTED_FAILURES,
  type RecordFailureInput,
  type RunStatus,
  type RunSummary,
  type VmResult,
  type VmWorkItem,
  vmResult,
} from './contract.js';
import { failureCode } from './errors.js';
import type { StepLogger } from './ports.js';

/** Work-list entries read per store call when a run is read back. */
export const READ_PAGE = 1000;
/** A reported failure's message is cut here (the whole message is in the run store). */
const MAX_MESSAGE = 300;

/** The batch loop of a run of `vmCount` VMs, as lock-check returns it. */
export function batchPlan(vmCount: number) {
  return { vmCount, batchSize: BATCH_SIZE, batch: { index: 0, count: Math.ceil(vmCount / BATCH_SIZE) } };
}

/** The VMs of one batch: the work-list slice [batchIndex × BATCH_SIZE, + BATCH_SIZE). */
export async function loadBatch(runs: RunStore, input: LoadBatchInput): Promise<LoadBatchOutput> {
  const offset = input.batchIndex * BATCH_SIZE;
  const end = Math.min(offset + BATCH_SIZE, input.vmCount);
  const vms = end > offset ? await runs.readWorkList(input.runId, offset, end) : [];
  return { jobId: input.jobId, runId: input.runId, startedAt: input.startedAt, offset, vms };
}

/**
 * Records a VM's terminal outcome. After a commit the recovery point exists whatever the store
 * says, so a store failure must not send the VM to rollback: it is logged, and finish-run reports
 * the VM as failed `no-result` (its recovery point is there for the next run to build on).
 */
export async function recordVmResult(
  runs: RunStore,
  logger: StepLogger,
  item: Pick<VmWorkItem, 'runId' | 'index'>,
  result: VmResult,
): Promise<void> {
  try {
    await runs.putResult(item.runId, item.index, result);
  } catch (err) {
    logger.error('could not record the VM result in the run store', {
      vmUuid: result.vmUuid,
      status: result.status,
      error: (err as Error).message,
    });
  }
}

/** The result of a VM whose rollback failed too: both errors, in the steps' terms. */
export function failedVmResult(input: RecordFailureInput): VmResult {
  const { code, message } = failureCode(input.failure);
  const rollback = failureCode(input.rollbackFailure);
  return {
    vmUuid: input.vmUuid,
    status: 'failed',
    bytes: 0,
    durationMs: 0,
    errorCode: code,
    message: `${message}; the rollback failed too (${rollback.code}: ${rollback.message}), the next run removes what is left`,
  };
}

export const NO_RESULT = 'no-result';

/**
 * Every VM of the run's work list (its first `vmCount` items when known) with its recorded result,
 * or failed `no-result`, in order.
 */
export async function* runVmResults(
  runs: RunStore,
  runId: string,
  vmCount = Number.POSITIVE_INFINITY,
): AsyncGenerator<VmResult> {
  for (let start = 0; start < vmCount; start += READ_PAGE) {
    const end = Math.min(start + READ_PAGE, vmCount);
    const [vms, results] = await Promise.all([
      runs.readWorkList(runId, start, end),
      runs.readResults(runId, start, end),
    ]);
    const byIndex = new Map(results.map((r) => [r.index, r.record]));
    for (const [i, vmUuid] of vms.entries()) {
      const parsed = vmResult.safeParse(byIndex.get(start + i));
      yield parsed.success && parsed.data.vmUuid === vmUuid
        ? parsed.data
        : {
            vmUuid,
            status: 'failed',
            bytes: 0,
            durationMs: 0,
            errorCode: NO_RESULT,
            message: parsed.success
              ? `the recorded result names VM ${parsed.data.vmUuid}, not this one`
              : 'no outcome was recorded for this VM (its execution ended before it, or the run store was unavailable); see the step logs',
          };
    }
    if (vms.length < end - start) return;
  }
}

function runStatus(skipped: boolean, vmCount: number, failed: number): RunStatus {
  if (skipped) return 'skipped';
  if (failed === 0) return 'succeeded';
  return failed === vmCount ? 'failed' : 'partial';
}

/**
 * The run's summary: counters over every VM, the first MAX_REPORTED_FAILURES failures by name.
 * `eachVm` sees every VM's result on the same pass (finish-run collects the committed ones).
 */
export async function summarizeRun(
  runs: RunStore,
  input: FinishRunInput,
  finishedAt: string,
  eachVm?: (vm: VmResult) => void,
): Promise<RunSummary> {
  let vmCount = 0;
  let failed = 0;
  let bytes = 0;
  const failures: RunSummary['failures'] = [];
  if (input.status !== 'skipped') {
    for await (const vm of runVmResults(runs, input.runId, input.vmCount)) {
      eachVm?.(vm);
      vmCount++;
      bytes += vm.bytes;
      if (vm.status !== 'failed') continue;
      failed++;
      if (failures.length < MAX_REPORTED_FAILURES) {
        failures.push({
          vmUuid: vm.vmUuid,
          errorCode: vm.errorCode ?? 'unknown',
          ...(vm.message ? { message: clipUtf8(vm.message, MAX_MESSAGE) } : {}),
        });
      }
    }
  }
  return {
    jobId: input.jobId,
    runId: input.runId,
    status: runStatus(input.status === 'skipped', vmCount, failed),
    startedAt: input.startedAt,
    finishedAt,
    bytes,
    vmCount,
    succeeded: vmCount - failed,
    failed,
    failures,
    ...(input.reason ? { reason: input.reason } : {}),
    ...(input.skipped ? { skipped: input.skipped, skippedVms: input.skippedVms ?? [] } : {}),
  };
}
