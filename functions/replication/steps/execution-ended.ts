import type { LeaseStore } from '../../lease/port.js';
import { leaseKey } from '../context.js';
import { ENDED_HOW, ENDED_STATUSES, type EndedStatus, type RunSummary } from '../contract.js';
import type { RunEventSink, RunStore, StepLogger } from '../ports.js';
import { batchPlan, summarizeRun } from '../run-results.js';

/** How an execution ended without reaching finish-run (an operator's StopExecution, a timeout, …). */

export { ENDED_STATUSES, type EndedStatus } from '../contract.js';

/** The part of a "Step Functions Execution Status Change" event's detail the execution-ended path reads. */
export interface StatusChangeDetail {
  name: string;
  status: string;
  startDate: number;
  stopDate?: number | null;
  input?: string | null;
  error?: string | null;
  cause?: string | null;
}

/** An execution that ended without its end step, as its status change tells it. */
export interface EndedExecution {
  jobId: string;
  /** The execution name. */
  name: string;
  /** The execution input (an object; empty when it was not one). */
  input: Record<string, unknown>;
  status: EndedStatus;
  startedAt: string;
  stoppedAt: string;
  error?: string;
  cause?: string;
}

/** The ended execution of a status change, or undefined when there is nothing to clean up. */
export function endedExecutionOf(d: StatusChangeDetail, now = () => Date.now()): EndedExecution | undefined {
  if (!ENDED_STATUSES.includes(d.status as EndedStatus)) return undefined;
  let input: unknown;
  try {
    input = JSON.parse(d.input ?? '{}');
  } catch {
    input = undefined;
  }
  const fields = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const jobId = fields.jobId;
  if (typeof jobId !== 'string' || jobId === '') return undefined;
  return {
    jobId,
    name: d.name,
    input: fields,
    status: d.status as EndedStatus,
    startedAt: new Date(d.startDate).toISOString(),
    stoppedAt: new Date(d.stopDate ?? now()).toISOString(),
    ...(d.error ? { error: d.error } : {}),
    // The cause can hold a step's message; keep it short in the event.
    ...(d.cause ? { cause: d.cause.slice(0, 500) } : {}),
  };
}

/** "the execution was stopped before <step> (error: cause)". */
export const endedBefore = (e: Pick<EndedExecution, 'status' | 'error' | 'cause'>, step: string) =>
  `the execution ${ENDED_HOW[e.status]} before ${step}${e.error ? ` (${e.error}${e.cause ? `: ${e.cause}` : ''})` : ''}`;

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
    reason: `${endedBefore(e, 'finish-run')}; lease released`,
  };
  await deps.events.publish(result);
  deps.logger.error('run ended without finish-run', { jobId: e.jobId, runId: e.runId, status: e.status });
  return result;
}
