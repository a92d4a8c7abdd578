/**
 * The execution-ended path of the failover and failback machines. An execution that ends without
 * its end step (StopExecution, the 24-hour execution timeout, a failure no Catch takes, such as
 * the end step's own) would keep the job's lease until it expires, blocking the job's replication.
 * The lease is released only if the execution's run still holds it (never another run's), and only
 * then is the run reported `xcr failover failed` / `xcr failback failed`: an execution that failed
 * through its end step had released it and published that event already.
 *
 * Nothing on the pools is touched: their records say how far the run got, so a new execution with
 * `"run": "<run id>"` resumes it, and the sweep of the next run removes what it left half-made.
 */
import type { LeaseStore } from '../../lease/port.js';
import { leaseKey } from '../context.js';
import type { EndedStatus } from '../contract.js';
import type { RunEventSink, StepLogger } from '../ports.js';
import { type EndedExecution, endedBefore } from '../steps/execution-ended.js';
import { clip, FAILBACK_STATE, FAILOVER_STATE } from './contract.js';

export const ENDED_WORKFLOWS = ['failover', 'failback'] as const;
export type EndedWorkflow = (typeof ENDED_WORKFLOWS)[number];

export interface WorkflowEnded extends Omit<EndedExecution, 'input'> {
  workflow: EndedWorkflow;
  /** The run id: the input's `run`, else the execution name (the lease's owner either way). */
  run: string;
  /** The one VM the execution was about: a failback's, an undo's. */
  vm?: string;
  undo?: true;
}

export interface WorkflowEndedDeps {
  leases: LeaseStore;
  events: RunEventSink;
  logger: StepLogger;
}

export interface WorkflowEndedResult {
  workflow: EndedWorkflow;
  jobId: string;
  run: string;
  status: EndedStatus;
  /** Whether the run still held the job's lease (and this released it and published the event). */
  released: boolean;
}

const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

/** The run of an ended failover or failback execution, read from its input as its begin step does. */
export function workflowEndedOf(workflow: EndedWorkflow, e: EndedExecution): WorkflowEnded {
  const { input, ...rest } = e;
  const undo = typeof input.undo === 'object' && input.undo !== null ? input.undo : undefined;
  const vm = workflow === 'failback' ? text(input.vm) : text((undo as { vm?: unknown } | undefined)?.vm);
  return {
    ...rest,
    workflow,
    run: text(input.run) ?? e.name,
    ...(vm ? { vm } : {}),
    ...(workflow === 'failover' && undo ? { undo: true as const } : {}),
  };
}

const END_STEP = { failover: FAILOVER_STATE.end, failback: FAILBACK_STATE.end } as const;

/** Releases the ended execution's lease if its run still holds it, and then reports the run failed. */
export async function workflowEnded(deps: WorkflowEndedDeps, e: WorkflowEnded): Promise<WorkflowEndedResult> {
  const released = await deps.leases.release(leaseKey(e.jobId), e.run);
  const result: WorkflowEndedResult = {
    workflow: e.workflow,
    jobId: e.jobId,
    run: e.run,
    status: e.status,
    released,
  };
  const fields = { jobId: e.jobId, run: e.run, execution: e.name, status: e.status };
  if (!released) {
    deps.logger.info(`${e.workflow} execution ended; its run did not hold the job lease any more`, fields);
    return result;
  }
  await deps.events.publishEvent?.(`xcr ${e.workflow} failed`, {
    jobId: e.jobId,
    run: e.run,
    ...(e.vm ? { vm: e.vm } : {}),
    ...(e.undo ? { undo: true } : {}),
    status: e.status,
    message: clip(
      `${endedBefore(e, END_STEP[e.workflow])}; lease released; a new execution with "run": "${e.run}" resumes it`,
    ),
  });
  deps.logger.error(`${e.workflow} ended without ${END_STEP[e.workflow]}; lease released`, fields);
  return result;
}
