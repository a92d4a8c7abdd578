/**
 * The drill workflow's contract: state names, what each drill step receives and returns, declared
 * once as strict zod schemas (as the replication contract does). Payloads are ids, flags and
 * counters: one Map item per recovery point, never a session ref, never a credential.
 */
import { z } from 'zod';
import { ConfigError } from '../../config/load.js';

export const DRILL_STATE = {
  selectPoints: 'select-points',
  dueChoice: 'drill-due?',
  notDue: 'not-due',
  drillPoints: 'drill-points',
  clonePoint: 'clone-point',
  isolate: 'isolate',
  boot: 'boot',
  check: 'check',
  checkedChoice: 'checked?',
  checkWait: 'check-wait',
  teardown: 'teardown',
  report: 'report',
} as const;

/** The Lambda-backed drill steps, in drill order. */
export const DRILL_STEP_NAMES = [
  DRILL_STATE.selectPoints,
  DRILL_STATE.clonePoint,
  DRILL_STATE.isolate,
  DRILL_STATE.boot,
  DRILL_STATE.check,
  DRILL_STATE.teardown,
  DRILL_STATE.report,
] as const;
export type DrillStepName = (typeof DRILL_STEP_NAMES)[number];

/** Run statuses that count toward drill.every { afterRuns } (a run that made recovery points). */
export const DRILL_TRIGGER_STATUSES = ['succeeded', 'partial'] as const;

/** The steps of one point before teardown: the one that failed is named in the result. */
export type DrillPointStep = 'clone-point' | 'isolate' | 'boot' | 'check';

const id = z.string().min(1);
const count = z.number().int().nonnegative();
/** What a Catch writes at its ResultPath: Step Functions' error object (kept as it comes). */
const caughtError = z.looseObject({ Error: z.string(), Cause: z.string().optional() });

/** Execution input: from the schedule `{ jobId }`, the run-ended rule `{ jobId, afterRun }`, or `xcr drill`. */
export const drillInput = z.strictObject({
  jobId: id,
  /** The run whose success started this execution (drill.every { afterRuns }): drill only if due. */
  afterRun: id.optional(),
  /** Drill only this source VM's newest point. */
  vm: id.optional(),
  /** Drill this recovery point instead of the newest ones. */
  point: id.optional(),
});
export type DrillInput = z.infer<typeof drillInput>;

/** select-points input: the execution input and the execution name (= drill run id). */
export const selectPointsInput = z.strictObject({ drillRun: id, request: drillInput });
export type SelectPointsInput = z.infer<typeof selectPointsInput>;

export const drillPoint = z.strictObject({ recoveryPoint: id, vm: z.string() });

export const selectPointsOutput = z.strictObject({
  jobId: id,
  drillRun: id,
  /** false: an `afterRun` execution for a run that does not make a drill due (nothing was touched). */
  due: z.boolean(),
  reason: z.string().optional(),
  points: z.array(drillPoint),
  /** Leftovers of crashed drills removed before this drill. */
  removed: count,
});
export type SelectPointsOutput = z.infer<typeof selectPointsOutput>;

/** One point through clone-point → isolate → boot → check ⟲ → teardown; each step adds its field. */
export const drillItem = z.strictObject({
  jobId: id,
  drillRun: id,
  recoveryPoint: id,
  vm: z.string(),
  /** clone-point: the clone's uuid. */
  clone: id.optional(),
  /** isolate: the clone's VIFs are removed or on the isolated network. */
  isolated: z.literal(true).optional(),
  /** boot: when VM.start was called (boot seconds count from here). */
  bootStartedAt: z.string().optional(),
  /** check: whether the guest check passed. */
  done: z.boolean().optional(),
  bootSeconds: z.number().nonnegative().optional(),
  /** Set by the Catch of the step that failed. */
  failure: caughtError.optional(),
});
export type DrillItem = z.infer<typeof drillItem>;

export const drillPointResult = z.strictObject({
  recoveryPoint: id,
  vm: z.string(),
  passed: z.boolean(),
  bootSeconds: z.number().nonnegative().optional(),
  reason: z.string().optional(),
  /** The step that failed, when one did. */
  step: z.enum(['clone-point', 'isolate', 'boot', 'check']).optional(),
  /** "VM <uuid>" / "VDI <uuid>" teardown removed. */
  removed: z.array(z.string()),
});
export type DrillPointResult = z.infer<typeof drillPointResult>;

/** report input: whatever reached it (select-points' output and the Map's results, or a failure). */
export const reportInput = z.strictObject({
  drillRun: id,
  state: z.strictObject({
    ...drillInput.shape,
    ...selectPointsOutput.partial().shape,
    jobId: id,
    results: z.array(drillPointResult).optional(),
    failure: caughtError.optional(),
  }),
});
export type ReportInput = z.infer<typeof reportInput>;

export const drillReport = z.strictObject({
  jobId: id,
  drillRun: id,
  status: z.enum(['passed', 'failed']),
  /** Why the drill failed as a whole (no point to drill, the lease is held, …). */
  reason: z.string().optional(),
  results: z.array(drillPointResult),
  /** Everything removed: leftovers of crashed drills and this drill's clones. */
  removed: z.array(z.string()),
});
export type DrillReport = z.infer<typeof drillReport>;

const DRILL_INPUTS = {
  [DRILL_STATE.selectPoints]: selectPointsInput,
  [DRILL_STATE.clonePoint]: drillItem,
  [DRILL_STATE.isolate]: drillItem,
  [DRILL_STATE.boot]: drillItem,
  [DRILL_STATE.check]: drillItem,
  [DRILL_STATE.teardown]: drillItem,
  [DRILL_STATE.report]: reportInput,
} as const satisfies Record<DrillStepName, z.ZodType>;
export type DrillStepInput<S extends DrillStepName> = z.infer<(typeof DRILL_INPUTS)[S]>;

/** Parses a drill step's input; a mismatch is a ConfigError naming the step and the fields. */
export function parseDrillInput<S extends DrillStepName>(step: S, input: unknown): DrillStepInput<S> {
  const result = DRILL_INPUTS[step].safeParse(input);
  if (result.success) return result.data as DrillStepInput<S>;
  throw new ConfigError(
    result.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`),
    `${step} input`,
  );
}
