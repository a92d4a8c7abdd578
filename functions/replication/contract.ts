/**
 * The workflow's contract: names of the states, what each step receives and returns, and the
 * error names the state machine retries or catches. Shared by the handlers, the CDK workflow
 * definition and the local runner. Payloads carry ids and counters only (Step Functions caps a
 * state's input/output at 256 KiB; xcr keeps them under 16 KiB whatever the number of VMs: lists
 * that grow with the job live in the run store) — never credentials, never session refs.
 *
 * Each payload is declared once, as a zod schema; the TypeScript types are inferred from it. What a
 * step returns is parsed by the next step, so the schemas reject unknown keys (a field added to a
 * type but not to its schema cannot vanish between two states); only what Step Functions itself
 * writes into a state (the Catch's error object) passes unknown keys through.
 */
import { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { LAMBDA_THROTTLED, STEP_ERROR } from '../retry/index.js';

export const STATE = {
  // The run (parent) state machine: lock-check → batches in turn → finish-run.
  lockCheck: 'lock-check',
  skippedChoice: 'skipped?',
  batchesLeftChoice: 'batches-left?',
  /** One batch of VMs as a child execution of the batch state machine (startExecution.sync:2). */
  runBatch: 'run-batch',
  /** The batch child failed as a whole (it should not): its VMs count as `no-result`, the run goes on. */
  batchFailed: 'batch-failed',
  nextBatch: 'next-batch',
  finishRun: 'finish-run',
  // The batch state machine: load-batch → Map over its VMs.
  loadBatch: 'load-batch',
  replicateVms: 'replicate-vms',
  snapshotPrevious: 'snapshot-previous',
  disksDoneChoice: 'disks-done?',
  /** A VM's disk loop as a child execution of the transfer state machine (startExecution.sync:2). */
  transferDisks: 'transfer-disks',
  commitOrRollback: 'commit-or-rollback',
  /** commit-or-rollback failed: was it already the rollback? */
  rollbackTriedChoice: 'rollback-tried?',
  /** The commit failed: roll back (commit-or-rollback again, with the failure). */
  commitFailed: 'commit-failed',
  /** The rollback failed too: the VM's failure (both errors) is recorded; the run goes on. */
  recordFailure: 'record-failure',
  /** Even that record failed: the VM has no result, which finish-run reports as failed `no-result`. */
  resultLost: 'result-lost',
  // The transfer state machine: stream-delta ⟲ at most TRANSFER_INVOCATIONS times.
  streamDelta: 'stream-delta',
  countInvocation: 'count-invocation',
  transferMoreChoice: 'transfer-more?',
  transferEnd: 'transfer-end',
} as const;

/**
 * VMs per batch child execution. Two bounds: the load-batch output lists the batch's VM uuids
 * (~39 bytes each in JSON), 250 × 39 ≈ 9.8 KB, under the 16 KiB payload target; and the batch
 * execution's history: 11 events of its own (execution 2, load-batch 5, Map 4) + 22 per VM
 * (iteration 2, snapshot-previous 5, disks-done? 2, transfer-disks 6, disks-done? 2,
 * commit-or-rollback 5) = 5,511 events, leaving ~14,000 under the 20,000 target for VMs whose disks
 * need more than one transfer execution (8 events each: transfer-disks 6 + disks-done? 2).
 */
export const BATCH_SIZE = 250;

/**
 * stream-delta invocations per transfer child execution: 9 events each (the Lambda task 5,
 * count-invocation 2, transfer-more? 2) + 4 (execution 2, transfer-end 2): 1,800 → 16,204 events.
 * A cbt disk needs ceil(changed bytes / cbtChunkMiB) invocations (50 TiB at the default 1 GiB:
 * 51,200, i.e. 29 transfer executions); a vhd disk needs one.
 */
export const TRANSFER_INVOCATIONS = 1_800;

/** Failed VMs a run summary (the finish-run output and the run event) names; the rest are counted. */
export const MAX_REPORTED_FAILURES = 20;

/** The Lambda-backed steps, in run order (finish-run releases the lease and reports the run). */
/** Step Functions execution statuses of a run that ended without finish-run (the execution-ended rule). */
export const ENDED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;
export type EndedStatus = (typeof ENDED_STATUSES)[number];
/** How an execution of each ended status ended, for a reason or an event's message. */
export const ENDED_HOW: Readonly<Record<EndedStatus, string>> = {
  FAILED: 'failed',
  TIMED_OUT: 'timed out',
  ABORTED: 'was stopped',
};

export const STEP_NAMES = [
  STATE.lockCheck,
  STATE.loadBatch,
  STATE.snapshotPrevious,
  STATE.streamDelta,
  STATE.commitOrRollback,
  STATE.recordFailure,
  STATE.finishRun,
] as const;
export type StepName = (typeof STEP_NAMES)[number];

/**
 * Error names the state machine retries or catches. Transient ones are retried; which failures are
 * transient is the policy of functions/retry, which also names Lambda's throttling error.
 */
export const ERROR = {
  transient: STEP_ERROR.transient,
  permanent: STEP_ERROR.permanent,
  config: 'ConfigError',
  lambdaThrottled: LAMBDA_THROTTLED,
} as const;

const id = z.string().min(1);
const count = z.number().int().nonnegative();
const transferKind = z.enum(['full', 'delta']);
const transferMode = z.enum(['vhd', 'cbt']);

/** What a Catch writes at its ResultPath: Step Functions' error object (kept as it comes). */
const caughtError = z.looseObject({ Error: z.string(), Cause: z.string().optional() });

/** Execution input, as the schedule sends it (the workflow passes scheduledTime to lock-check). */
export const runInput = z.strictObject({
  jobId: id,
  /** ISO time the schedule fired (the local runner sets it to now). */
  scheduledTime: z.string(),
});
export type RunInput = z.infer<typeof runInput>;

/** lock-check input: the execution input plus the execution name (= run id). */
export const lockCheckInput = runInput.extend({ runId: id });
export type LockCheckInput = z.infer<typeof lockCheckInput>;

export const vmWorkItem = z.strictObject({
  jobId: id,
  runId: id,
  vmUuid: id,
  /** The VM's place in the run's work list (the run store keys its result by it). */
  index: count,
  /** The run's start time (names and orders everything the run creates). */
  startedAt: z.string(),
});
export type VmWorkItem = z.infer<typeof vmWorkItem>;

/** The run's batch loop: batch `index` of `count` runs next (the Choice compares the two). */
export const batchCounter = z.strictObject({ index: count, count });

/** A VM the job selects but does not replicate this time, with why (e.g. "failed over …"). */
export const skippedVm = z.strictObject({ vmUuid: id, reason: z.string() });
export type SkippedVm = z.infer<typeof skippedVm>;

/** lock-check output: ids and counters only; the VM list is in the run store. */
export const lockCheckOutput = z.strictObject({
  jobId: id,
  runId: id,
  startedAt: z.string(),
  status: z.enum(['acquired', 'skipped']),
  /** Why the run was skipped (the lease holder's run id). */
  reason: z.string().optional(),
  vmCount: count,
  batchSize: z.number().int().positive(),
  batch: batchCounter,
  /** Selected VMs left out of this run (failed over to the destination): how many, and the first ones. */
  skipped: count.optional(),
  skippedVms: z.array(skippedVm).max(MAX_REPORTED_FAILURES).optional(),
});
export type LockCheckOutput = z.infer<typeof lockCheckOutput>;

/** Which run a child execution works for. */
const runRef = z.strictObject({ jobId: id, runId: id, startedAt: z.string() });

/** load-batch input: which batch of the run (the batch child's input, as run-batch passes it). */
export const loadBatchInput = runRef.extend({
  batchIndex: count,
  /** The run's VM count: nothing past it is read (a retried lock-check may have left more items). */
  vmCount: count,
});
export type LoadBatchInput = z.infer<typeof loadBatchInput>;

/** The batch's VM uuids (at most BATCH_SIZE) and the work-list index of the first. */
export const loadBatchOutput = runRef.extend({
  offset: count,
  vms: z.array(id).max(BATCH_SIZE),
});
export type LoadBatchOutput = z.infer<typeof loadBatchOutput>;

export type TransferKind = z.infer<typeof transferKind>;
export type TransferMode = z.infer<typeof transferMode>;

/** One disk of one VM in a run. Uuids only: refs are per session. */
export const diskPlan = z.strictObject({
  /** VBD userdevice on the source VM ("0", "1", …). */
  userdevice: z.string(),
  /** The new source snapshot's VDI. */
  sourceVdi: id,
  /** The base source snapshot VDI for a delta (absent for a full). */
  baseVdi: z.string().optional(),
  /** The writable target VDI on the destination (a clone of the last recovery point's disk, or new). */
  targetVdi: id,
  kind: transferKind,
  /** Why a full was chosen when a delta was possible in principle. */
  fullReason: z.string().optional(),
  virtualSize: count,
  bytes: count,
  done: z.boolean(),
  /** How the disk travels (absent = vhd, as before the cbt mode existed). */
  mode: transferMode.optional(),
  /** Why this mode was chosen (e.g. why auto fell back to vhd). */
  modeReason: z.string().optional(),
  /**
   * cbt mode: disk byte offset below which every extent has been written to the target. The
   * extents are recomputed each invocation (the snapshot is immutable), so the offset alone resumes.
   */
  cursor: count.optional(),
  /** VHD chain depth of the target on the destination SR (1 = flat), measured when it was made. */
  chainDepth: z.number().int().positive().optional(),
  /** The source disk's image format (absent = vhd): a qcow2 disk's full reads its clusters from a qcow2 export. */
  imageFormat: z.enum(['vhd', 'qcow2']).optional(),
});
export type DiskPlan = z.infer<typeof diskPlan>;

/** The transfer mode of one disk, as a VM result reports it. */
export const diskModeReport = z.strictObject({
  userdevice: z.string(),
  mode: transferMode,
  reason: z.string().optional(),
});
export type DiskModeReport = z.infer<typeof diskModeReport>;

/** State of one VM through snapshot-previous → stream-delta (looped) → commit-or-rollback. */
export const vmRunState = vmWorkItem.extend({
  /** The source snapshot VM taken by this run. */
  sourceSnapshot: z.string().optional(),
  disks: z.array(diskPlan),
  /** Deltas since the last full that the new recovery point will carry. */
  chain: count,
  /** True when every disk has been transferred and verified. */
  done: z.boolean(),
  warnings: z.array(z.string()),
  /** Set by the state machine's Catch on stream-delta: the failure that sends this VM to rollback. */
  failure: caughtError.optional(),
  /** Set by the Catch on commit-or-rollback (the commit failed; the rollback comes next). */
  stepFailure: caughtError.optional(),
});
export type VmRunState = z.infer<typeof vmRunState>;

/** A VM whose snapshot-previous failed: the Catch adds the failure to the Map item. */
export const failedWorkItem = vmWorkItem.extend({ failure: caughtError });
export type FailedWorkItem = z.infer<typeof failedWorkItem>;

/** commit-or-rollback: a VM's state after its disks, or the Map item when snapshot-previous failed. */
export const commitInput = z.union([vmRunState, failedWorkItem]);
export type CommitInput = z.infer<typeof commitInput>;

/** The run state of a VM that failed before snapshot-previous produced one: nothing transferred. */
export function asRunState(input: CommitInput): VmRunState {
  return 'disks' in input ? input : { ...input, disks: [], chain: 0, done: false, warnings: [] };
}

export const vmResult = z.strictObject({
  vmUuid: z.string(),
  status: z.enum(['succeeded', 'failed']),
  kind: transferKind.optional(),
  bytes: count,
  durationMs: z.number(),
  /** The recovery point (replica VM uuid) this run produced. */
  recoveryPoint: z.string().optional(),
  /** The transfer mode of each disk and why it was chosen. */
  modes: z.array(diskModeReport).optional(),
  /** The XAPI error code (or error name) of a failure. */
  errorCode: z.string().optional(),
  message: z.string().optional(),
  warnings: z.array(z.string()).optional(),
  /** Deepest destination VHD chain among this run's target disks. */
  chainDepth: z.number().int().positive().optional(),
});
export type VmResult = z.infer<typeof vmResult>;
export type VmStatus = VmResult['status'];

/**
 * record-failure: a VM whose rollback failed too (the state machine's per-VM state at that point):
 * the failure that sent it to rollback and the rollback's own.
 */
export const recordFailureInput = vmWorkItem.extend({
  failure: caughtError,
  rollbackFailure: caughtError,
});
export type RecordFailureInput = z.infer<typeof recordFailureInput>;

/** finish-run: lock-check's output at the end of the batch loop (the results are in the run store). */
export const finishRunInput = lockCheckOutput.extend({
  /** The last batch child that failed as a whole (its error name only). */
  batchFailure: z.strictObject({ Error: z.string() }).optional(),
});
export type FinishRunInput = z.infer<typeof finishRunInput>;

/** A failed VM as a run summary names it. */
export const reportedFailure = z.strictObject({
  vmUuid: z.string(),
  errorCode: z.string(),
  message: z.string().optional(),
});

/**
 * A run as finish-run returns it and its event carries it: counters, and the first
 * MAX_REPORTED_FAILURES failed VMs; every VM's result is in the run store.
 */
export const runSummary = z.strictObject({
  jobId: id,
  runId: id,
  status: z.enum(['succeeded', 'failed', 'partial', 'skipped']),
  startedAt: z.string(),
  finishedAt: z.string(),
  bytes: count,
  vmCount: count,
  succeeded: count,
  failed: count,
  failures: z.array(reportedFailure).max(MAX_REPORTED_FAILURES),
  reason: z.string().optional(),
  /** Selected VMs the run left out (failed over): how many, and the first MAX_REPORTED_FAILURES. */
  skipped: count.optional(),
  skippedVms: z.array(skippedVm).max(MAX_REPORTED_FAILURES).optional(),
});
export type RunSummary = z.infer<typeof runSummary>;
export type RunStatus = RunSummary['status'];

/** A run with every VM's result (read back from the run store: the CLI's view of a local run). */
export const runResult = runSummary.extend({ vms: z.array(vmResult) });
export type RunResult = z.infer<typeof runResult>;

/** What each step parses from its state input and what it returns (the next state's input). */
export const STEP_PAYLOADS = {
  [STATE.lockCheck]: { input: lockCheckInput, output: lockCheckOutput },
  [STATE.loadBatch]: { input: loadBatchInput, output: loadBatchOutput },
  [STATE.snapshotPrevious]: { input: vmWorkItem, output: vmRunState },
  [STATE.streamDelta]: { input: vmRunState, output: vmRunState },
  [STATE.commitOrRollback]: { input: commitInput, output: vmResult },
  [STATE.recordFailure]: { input: recordFailureInput, output: vmResult },
  [STATE.finishRun]: { input: finishRunInput, output: runSummary },
} as const satisfies Record<StepName, { input: z.ZodType; output: z.ZodType }>;

export type StepInput<S extends StepName> = z.output<(typeof STEP_PAYLOADS)[S]['input']>;
export type StepOutput<S extends StepName> = z.output<(typeof STEP_PAYLOADS)[S]['output']>;

/** One line per problem, "<field path>: <what is wrong>"; a union reports its closest alternative. */
function issueLines(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[] = []): string[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const closest = issue.errors.reduce((a, b) => (b.length < a.length ? b : a));
      return issueLines(closest, path);
    }
    return [`${path.map(String).join('.') || '(input)'}: ${issue.message}`];
  });
}

/** Parses a step's state input; a malformed payload is a configuration error naming each field. */
export function parseStepInput<S extends StepName>(step: S, input: unknown): StepInput<S> {
  const result = STEP_PAYLOADS[step].input.safeParse(input);
  if (result.success) return result.data as StepInput<S>;
  throw new ConfigError(issueLines(result.error.issues), `${step} input`);
}
