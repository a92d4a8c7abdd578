/**
 * The workflow's contract: names of the states, what each step receives and returns, and the
 * error names the state machine retries or catches. Shared by the handlers, the CDK workflow
 * definition and the local runner. Payloads carry ids and counters only (Step Functions caps a
 * state's input/output at 256 KiB) — never credentials, never session refs.
 */

export const STATE = {
  lockCheck: 'lock-check',
  skippedChoice: 'skipped?',
  skipped: 'skipped',
  replicateVms: 'replicate-vms',
  snapshotPrevious: 'snapshot-previous',
  streamDelta: 'stream-delta',
  disksDoneChoice: 'disks-done?',
  commitOrRollback: 'commit-or-rollback',
  finishRun: 'finish-run',
} as const;

/** The Lambda-backed steps, in run order (finish-run releases the lease and reports the run). */
export const STEP_NAMES = [
  STATE.lockCheck,
  STATE.snapshotPrevious,
  STATE.streamDelta,
  STATE.commitOrRollback,
  STATE.finishRun,
] as const;
export type StepName = (typeof STEP_NAMES)[number];

/** Error names thrown by handlers. Transient ones are retried by the state machine. */
export const ERROR = {
  transient: 'XcrTransientError',
  permanent: 'XcrPermanentError',
  config: 'ConfigError',
} as const;

/** Execution input, as the schedule sends it. */
export interface RunInput {
  jobId: string;
  /** ISO time the schedule fired (the local runner sets it to now). */
  scheduledTime?: string;
}

/** lock-check input: the execution input plus the execution name (= run id). */
export interface LockCheckInput extends RunInput {
  runId: string;
}

export interface VmWorkItem {
  jobId: string;
  runId: string;
  vmUuid: string;
  /** The run's start time (names and orders everything the run creates). */
  startedAt: string;
}

export interface LockCheckOutput {
  jobId: string;
  runId: string;
  startedAt: string;
  status: 'acquired' | 'skipped';
  /** Why the run was skipped (the lease holder's run id). */
  reason?: string;
  vms: VmWorkItem[];
}

export type TransferKind = 'full' | 'delta';

/** One disk of one VM in a run. Uuids only: refs are per session. */
export interface DiskPlan {
  /** VBD userdevice on the source VM ("0", "1", …). */
  userdevice: string;
  /** The new source snapshot's VDI. */
  sourceVdi: string;
  /** The base source snapshot VDI for a delta (absent for a full). */
  baseVdi?: string;
  /** The writable target VDI on the destination (a clone of the last recovery point's disk, or new). */
  targetVdi: string;
  kind: TransferKind;
  /** Why a full was chosen when a delta was possible in principle. */
  fullReason?: string;
  virtualSize: number;
  bytes: number;
  done: boolean;
  /** How the disk travels (absent = vhd, as before the cbt mode existed). */
  mode?: TransferMode;
  /** Why this mode was chosen (e.g. why auto fell back to vhd). */
  modeReason?: string;
  /**
   * cbt mode: disk byte offset below which every extent has been written to the target. The
   * extents are recomputed each invocation (the snapshot is immutable), so the offset alone resumes.
   */
  cursor?: number;
  /** VHD chain depth of the target on the destination SR (1 = flat), measured when it was made. */
  chainDepth?: number;
}

export type TransferMode = 'vhd' | 'cbt';

/** The transfer mode of one disk, as a VM result reports it. */
export interface DiskModeReport {
  userdevice: string;
  mode: TransferMode;
  reason?: string;
}

/** State of one VM through snapshot-previous → stream-delta (looped) → commit-or-rollback. */
export interface VmRunState extends VmWorkItem {
  /** The source snapshot VM taken by this run. */
  sourceSnapshot?: string;
  disks: DiskPlan[];
  /** Deltas since the last full that the new recovery point will carry. */
  chain: number;
  /** True when every disk has been transferred and verified. */
  done: boolean;
  warnings: string[];
  /** Set by the state machine's Catch: the failure that sends this VM to rollback. */
  failure?: { Error: string; Cause?: string };
}

export type VmStatus = 'succeeded' | 'failed';

export interface VmResult {
  vmUuid: string;
  status: VmStatus;
  kind?: TransferKind;
  bytes: number;
  durationMs: number;
  /** The recovery point (replica VM uuid) this run produced. */
  recoveryPoint?: string;
  /** The transfer mode of each disk and why it was chosen. */
  modes?: DiskModeReport[];
  /** The XAPI error code (or error name) of a failure. */
  errorCode?: string;
  message?: string;
  warnings?: string[];
  /** Deepest destination VHD chain among this run's target disks. */
  chainDepth?: number;
}

export interface FinishRunInput extends LockCheckOutput {
  results?: VmResult[];
  /** Set when the Map itself failed (a VM's rollback failed after retries). */
  mapFailure?: { Error: string; Cause?: string };
}

export type RunStatus = 'succeeded' | 'failed' | 'partial' | 'skipped';

export interface RunResult {
  jobId: string;
  runId: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string;
  bytes: number;
  vms: VmResult[];
  reason?: string;
}
