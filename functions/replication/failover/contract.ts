/**
 * The failover and failback workflows' contract: state names, the execution inputs and what each
 * step receives and returns, as strict zod schemas (as the replication and drill contracts do).
 * Payloads are ids, flags and counters, a per-VM Map of at most MAX_FAILOVER_VMS items, lists
 * that grow with what a run finds cut to a count and MAX_LISTED items, never a session ref, never
 * a credential.
 */

import { z } from 'zod';
import { ConfigError } from '../../config/load.js';
import { clipUtf8 } from '../clip.js';

export const FAILOVER_STATE = {
  begin: 'failover-begin',
  undoChoice: 'undo?',
  undo: 'failover-undo',
  vms: 'failover-vms',
  prepare: 'failover-prepare',
  nextChoice: 'failover-next?',
  refused: 'failover-refused',
  finalDelta: 'final-delta',
  clone: 'failover-clone',
  vmFailed: 'failover-vm-failed',
  end: 'failover-end',
} as const;

export const FAILBACK_STATE = {
  begin: 'failback-begin',
  syncedChoice: 'reverse-synced?',
  sync: 'failback-sync',
  cutoverChoice: 'cutover?',
  cutover: 'failback-cutover',
  finish: 'failback-finish',
  end: 'failback-end',
} as const;

/** The Lambda-backed failover steps (the final delta runs on the replication Lambdas). */
export const FAILOVER_STEP_NAMES = [
  FAILOVER_STATE.begin,
  FAILOVER_STATE.undo,
  FAILOVER_STATE.prepare,
  FAILOVER_STATE.clone,
  FAILOVER_STATE.vmFailed,
  FAILOVER_STATE.end,
  FAILBACK_STATE.begin,
  FAILBACK_STATE.sync,
  FAILBACK_STATE.cutover,
  FAILBACK_STATE.finish,
  FAILBACK_STATE.end,
] as const;
export type FailoverStepName = (typeof FAILOVER_STEP_NAMES)[number];

/**
 * VMs one failover execution works on: the Map's results travel in the execution state, so they
 * stay far below Step Functions' 256 KiB. A job with more VMs is failed over in groups (`vms`).
 */
export const MAX_FAILOVER_VMS = 100;
/** A per-VM message in a payload is cut to this many bytes of UTF-8 (XAPI errors can be long; Step
 *  Functions counts a payload's size in bytes). */
export const MAX_MESSAGE_BYTES = 1000;

const id = z.string().min(1);
const count = z.number().int().nonnegative();

/**
 * Items of a list that grows with what a run finds (the leftovers of crashed runs it removed) that
 * a payload or an event carries; the count says how many there were, the logs name them all.
 */
export const MAX_LISTED = 20;
const boundedList = z.strictObject({ count, items: z.array(z.string()).max(MAX_LISTED) });
/** A list bounded for a payload: how many, and the first MAX_LISTED of them. */
export type Listed = z.infer<typeof boundedList>;
export const NOTHING_LISTED: Listed = { count: 0, items: [] };
/** `prior` and then `more`, still bounded. */
export const listed = (more: readonly string[], prior: Listed = NOTHING_LISTED): Listed => ({
  count: prior.count + more.length,
  items: [...prior.items, ...more.slice(0, MAX_LISTED - prior.items.length)],
});
/** What a Catch writes at its ResultPath: Step Functions' error object (kept as it comes). */
const caughtError = z.looseObject({ Error: z.string(), Cause: z.string().optional() });

/** Failover execution input (`xcr failover`, or by hand: `aws stepfunctions start-execution`). */
export const failoverInput = z.strictObject({
  jobId: id,
  /** The failover run id; default the execution name. */
  run: id.optional(),
  /** Source VM uuids; default every VM the job has recovery points of. */
  vms: z.array(id).min(1).max(MAX_FAILOVER_VMS).optional(),
  /** Recovery point (replica VM uuid) to fail over to; default each VM's newest. */
  point: id.optional(),
  /** Shut the source VMs down, replicate a final delta, then fail over (no data loss). */
  planned: z.boolean().optional(),
  /** Start the DR copies. @default true */
  start: z.boolean().optional(),
  /** Fail over although the source VM runs and answers (split brain accepted). */
  force: z.boolean().optional(),
  /** Undo the failover of this VM instead: its DR copy goes, the source VM resumes. */
  undo: z.strictObject({ vm: id }).optional(),
});
export type FailoverInput = z.infer<typeof failoverInput>;

/** Failback execution input (`xcr failback`, or by hand). */
export const failbackInput = z.strictObject({
  jobId: id,
  /** The failback run id; default the execution name. */
  run: id.optional(),
  /** The failed-over source VM. */
  vm: id,
  /** Shut the DR copy down, send the final delta, move the VM back. */
  planned: z.boolean().optional(),
  /** Source-pool SR (uuid or name) for new disks where the original VM has none. */
  sr: id.optional(),
});
export type FailbackInput = z.infer<typeof failbackInput>;

/** A begin step's input: the execution input and the execution name (the run id unless `run`). */
const beginOf = <T extends z.ZodType>(request: T) => z.strictObject({ executionName: id, request });

export const failoverVmResult = z.strictObject({
  vm: id,
  status: z.enum(['failed-over', 'refused', 'failed', 'undone']),
  copy: id.optional(),
  point: id.optional(),
  /** planned: the final delta's recovery point and bytes */
  finalDelta: z.strictObject({ recoveryPoint: id, bytes: count, kind: z.string() }).optional(),
  code: z.string().optional(),
  message: z.string().optional(),
  warnings: z.array(z.string()),
});
export type FailoverVmResult = z.infer<typeof failoverVmResult>;

/** failover-begin's output: the lease is held, leftovers swept, the VMs listed. */
export const failoverBegun = z.strictObject({
  jobId: id,
  run: id,
  planned: z.boolean(),
  /** Whether the source pool answered (the VM steps do not wait for a lost one again). */
  sourceReachable: z.boolean(),
  vms: z.array(id).max(MAX_FAILOVER_VMS),
  removed: boundedList,
  request: failoverInput,
});
export type FailoverBegun = z.infer<typeof failoverBegun>;

/** One VM through failover-prepare → (final-delta) → failover-clone; each step adds its fields. */
export const failoverItem = z.strictObject({
  jobId: id,
  run: id,
  vm: id,
  sourceReachable: z.boolean(),
  request: failoverInput,
  /** prepare: when this failover started on the VM (the source record's and final delta's time). */
  at: z.string().optional(),
  /** prepare: what comes next. */
  next: z.enum(['refused', 'final-delta', 'clone']).optional(),
  /** prepare: the refusal; clone and vm-failed: the VM's result. */
  result: failoverVmResult.optional(),
  /** prepare: the final delta this run committed before (a retry). */
  finalDelta: failoverVmResult.shape.finalDelta,
  warnings: z.array(z.string()).optional(),
  /** Set by the Catch of the step that failed. */
  failure: caughtError.optional(),
});
export type FailoverItem = z.infer<typeof failoverItem>;

export const failoverReport = z.strictObject({
  jobId: id,
  run: id,
  planned: z.boolean(),
  vms: z.array(failoverVmResult),
  removed: boundedList,
});
export type FailoverReport = z.infer<typeof failoverReport>;

/** failover-end's input: whatever reached it (begin's output and the Map's results, or a failure). */
export const failoverEndInput = z.strictObject({
  executionName: id,
  state: z.looseObject({
    jobId: id,
    run: id.optional(),
    planned: z.boolean().optional(),
    results: z.array(failoverVmResult).optional(),
    report: failoverReport.optional(),
    removed: boundedList.optional(),
    failure: caughtError.optional(),
  }),
});
export type FailoverEndInput = z.infer<typeof failoverEndInput>;

/** What a failback has done so far: carried through its steps, then reported. */
const failbackOutcome = {
  /** Bytes of the reverse deltas this run sent. */
  bytes: count,
  recoveryPoint: id.optional(),
  replacedDisks: z.array(z.string()).optional(),
  /** planned, the original VM gone: the VM the failback made in its place. */
  newVm: id.optional(),
  removed: boundedList,
  warnings: z.array(z.string()),
};

/** One failback through its steps: begin → failback-sync ⟲ (one disk each) → cutover → finish → end. */
export const failbackState = z.strictObject({
  jobId: id,
  run: id,
  vm: id,
  planned: z.boolean(),
  /** Source-pool SR (uuid or name) for new disks where the original VM has none. */
  sr: id.optional(),
  /** What comes next; the copy's record (`xcr:failover`) says it again on a resumed run. */
  phase: z.enum(['sync', 'cutover', 'finish', 'synced', 'failed-back']),
  /** failback-sync: the next disk (by position in the reverse snapshot) and how many there are. */
  disk: count,
  disks: count.optional(),
  /** failback-sync over NBD: the disk at `disk` is written below this offset (the next step goes on there). */
  cursor: count.optional(),
  ...failbackOutcome,
});
export type FailbackState = z.infer<typeof failbackState>;

export const failbackReport = z.strictObject({
  jobId: id,
  run: id,
  vm: id,
  planned: z.boolean(),
  status: z.enum(['synced', 'failed-back']),
  ...failbackOutcome,
});
export type FailbackReport = z.infer<typeof failbackReport>;

export const failbackEndInput = z.strictObject({
  executionName: id,
  state: z.looseObject({
    jobId: id,
    run: id.optional(),
    vm: id.optional(),
    failure: caughtError.optional(),
  }),
});
export type FailbackEndInput = z.infer<typeof failbackEndInput>;

const INPUTS = {
  [FAILOVER_STATE.begin]: beginOf(failoverInput),
  [FAILOVER_STATE.undo]: failoverBegun,
  [FAILOVER_STATE.prepare]: failoverItem,
  [FAILOVER_STATE.clone]: failoverItem,
  [FAILOVER_STATE.vmFailed]: failoverItem,
  [FAILOVER_STATE.end]: failoverEndInput,
  [FAILBACK_STATE.begin]: beginOf(failbackInput),
  [FAILBACK_STATE.sync]: failbackState,
  [FAILBACK_STATE.cutover]: failbackState,
  [FAILBACK_STATE.finish]: failbackState,
  [FAILBACK_STATE.end]: failbackEndInput,
} as const satisfies Record<FailoverStepName, z.ZodType>;
export type FailoverStepInput<S extends FailoverStepName> = z.infer<(typeof INPUTS)[S]>;

/** Parses a step's input; a mismatch is a ConfigError naming the step and each bad field. */
export function parseFailoverInput<S extends FailoverStepName>(
  step: S,
  input: unknown,
): FailoverStepInput<S> {
  const result = INPUTS[step].safeParse(input);
  if (result.success) return result.data as FailoverStepInput<S>;
  throw new ConfigError(
    result.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`),
    `${step} input`,
  );
}

/** The run id of an execution: the input's `run`, else the execution name. */
export const runOf = (executionName: string, request: { run?: string | undefined }) =>
  request.run ?? executionName;

/** A message cut to MAX_MESSAGE_BYTES bytes of UTF-8 (clip.ts). */
export const clip = (s: string) => clipUtf8(s, MAX_MESSAGE_BYTES);
