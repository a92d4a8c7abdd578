import type { StepHandler } from '../../functions/handlers/steps.js';
import type { SimPool } from '../../sim/types.js';
import type { StepWrapper } from './sites.js';

/** The steps that run once per VM (the Map's iterator); lock-check and finish-run run once per run. */
export const PER_VM_STEPS = ['snapshot-previous', 'stream-delta', 'commit-or-rollback'] as const;

/**
 * Classes whose listing a per-VM step may make: a pool has one `pool` record, and its networks grow
 * with the hosts' network configuration, not with its VMs, disks or snapshots.
 */
const LISTABLE = new Set(['pool', 'network']);

/** A call that returns every record (or ref) of a class that grows with the pool's VMs. */
export function isClassListing(method: string): boolean {
  const m = /^(?:Async\.)?([A-Za-z_]+)\.get_all(?:_records)?(?:_where)?$/.exec(method);
  return m !== null && !LISTABLE.has(m[1]!);
}

export interface StepCalls {
  /** XAPI calls (both pools) made by each step, summed over its invocations. */
  byStep: Map<string, string[]>;
  /** Wraps the step handlers; run with the job's concurrency at 1 so calls are not interleaved. */
  wrap: StepWrapper;
}

/** Attributes the simulators' call logs to the workflow steps that made them. */
export function stepCalls(pools: SimPool[]): StepCalls {
  const byStep = new Map<string, string[]>();
  const wrap: StepWrapper = (step: string, handler: StepHandler) => async (input: unknown) => {
    const before = pools.map((p) => p.test.calls().length);
    try {
      return await handler(input);
    } finally {
      const made = pools.flatMap((p, i) => p.test.calls().slice(before[i]));
      byStep.set(step, [...(byStep.get(step) ?? []), ...made]);
    }
  };
  return { byStep, wrap };
}

/** A call that waits for a task to finish: how many a step makes depends on how long the task takes. */
export const isTaskWait = (method: string): boolean => method === 'event.from';

/** Calls per VM of the per-VM steps (`work`: without the task waits, whose number is timing). */
export function perVmCalls(calls: StepCalls, vms: number, opts: { work?: boolean } = {}): number {
  const counted = (step: string) =>
    (calls.byStep.get(step) ?? []).filter((m) => !(opts.work && isTaskWait(m))).length;
  return PER_VM_STEPS.reduce((sum, step) => sum + counted(step), 0) / vms;
}
