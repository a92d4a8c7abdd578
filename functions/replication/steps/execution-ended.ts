import type { LeaseStore } from '../../lease/port.js';
import { leaseKey } from '../context.js';
import type { EndedStatus, RunResult } from '../contract.js';
import type { RunEventSink, StepLogger } from '../ports.js';

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
}

/**
 * The cleanup path of a run that died holding its lease: release the lease if this run still holds
 * it (a no-op otherwise, so a duplicate or late event changes nothing) and report the run `failed`,
 * so the next scheduled run is never blocked until the lease expires.
 */
export async function executionEnded(deps: ExecutionEndedDeps, e: ExecutionEnded): Promise<RunResult> {
  await deps.leases.release(leaseKey(e.jobId), e.runId);
  const how = { FAILED: 'failed', TIMED_OUT: 'timed out', ABORTED: 'was stopped' }[e.status];
  const result: RunResult = {
    jobId: e.jobId,
    runId: e.runId,
    status: 'failed',
    startedAt: e.startedAt,
    finishedAt: e.stoppedAt,
    bytes: 0,
    vms: [],
    reason: `the execution ${how} before finish-run${e.error ? ` (${e.error}${e.cause ? `: ${e.cause}` : ''})` : ''}; lease released`,
  };
  await deps.events.publish(result);
  deps.logger.error('run ended without finish-run', { jobId: e.jobId, runId: e.runId, status: e.status });
  return result;
}
