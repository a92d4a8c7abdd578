import type { LeaseStore } from '../../lease/port.js';
import { leaseKey } from '../context.js';
import type { EndedStatus, RunSummary } from '../contract.js';
import type { RunEventSink, RunStore, StepLogger } from '../ports.js';
import { batchPlan, summarizeRun } from '../run-results.js';

/** How an execution ended without reaching finish-run (an operator's StopExecution, a timeout, …). */

export { ENDED_STATUSES, type EndedStatus } from '../contract.js';

export interface ExecutionEnded {
  jobId: string;
  /** The execution name, which is the run id (and the lease holder). */
  runId: string;
  status: EndedStatus;
  startedAt: string;
  stoppedAt: string;
  error?: string;
  cause?: string;
}

export interface ExecutionEndedDeps {
  leases: LeaseStore;
  events: RunEventSink;
  logger: StepLogger;
  /** When given, the event counts what the run recorded before it ended (VMs without a result failed). */
  runs?: RunStore;
}

/**
 * The cleanup path of a run that died holding its lease: release the lease if this run still holds
 * it (a no-op otherwise, so a duplicate or late event changes nothing) and report the run `failed`,
 * so the next scheduled run is never blocked until the lease expires.
 */
export async function executionEnded(deps: ExecutionEndedDeps, e: ExecutionEnded): Promise<RunSummary> {
  await deps.leases.release(leaseKey(e.jobId), e.runId);
  const how = { FAILED: 'failed', TIMED_OUT: 'timed out', ABORTED: 'was stopped' }[e.status];
  const base = { jobId: e.jobId, runId: e.runId, startedAt: e.startedAt };
  const recorded = deps.runs
    ? await summarizeRun(
        deps.runs,
        // the VM count is not known here: the whole work list is read
        { ...base, status: 'acquired', ...batchPlan(0), vmCount: Number.MAX_SAFE_INTEGER },
        e.stoppedAt,
      )
    : undefined;
  const result: RunSummary = {
    ...base,
    status: 'failed',
    finishedAt: e.stoppedAt,
    bytes: recorded?.bytes ?? 0,
    vmCount: recorded?.vmCount ?? 0,
    succeeded: recorded?.succeeded ?? 0,
    failed: recorded?.failed ?? 0,
    failures: recorded?.failures ?? [],
    reason: `the execution ${how} before finish-run${e.error ? ` (${e.error}${e.cause ? `: ${e.cause}` : ''})` : ''}; lease released`,
  };
  await deps.events.publish(result);
  deps.logger.error('run ended without finish-run', { jobId: e.jobId, runId: e.runId, status: e.status });
  return result;
}
