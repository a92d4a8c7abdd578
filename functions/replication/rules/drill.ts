import { KEY, parsePendingDrillName, ROLE } from '../metadata.js';
import type { Owned } from './ownership.js';

/**
 * Drill rules, pure over plain records. A drill clone is recognised only by its own keys: role
 * `drill`, this job, and an `xcr:self` equal to its own uuid (VM.clone copies other_config but not
 * the uuid, so a user's clone of a drill clone carries a foreign self and is never touched). The
 * one exception is a clone caught between VM.clone and its tagging: it still carries the recovery
 * point's keys, so it is recognised by the pending name the drill gave it in VM.clone.
 */
export interface DrillVm extends Owned {
  ref: string;
  power_state: string;
  is_a_snapshot: boolean;
}

export interface DrillVdi extends Owned {
  ref: string;
  /** Refs of the VMs with a VBD to this VDI. */
  vms: string[];
}

const ownDrill = (o: Owned, role: string, jobId: string): boolean =>
  o.other_config[KEY.role] === role &&
  o.other_config[KEY.job] === jobId &&
  o.other_config[KEY.self] === o.uuid;

/** The drill run a VM belongs to, when it provably is a drill clone of this job. */
export function drillRunOf(vm: DrillVm, jobId: string): string | undefined {
  if (vm.is_a_snapshot) return undefined;
  if (ownDrill(vm, ROLE.drill, jobId)) return vm.other_config[KEY.drillRun];
  const pending = parsePendingDrillName(vm.name_label ?? '');
  if (pending?.jobId === jobId && vm.other_config[KEY.role] === ROLE.recoveryPoint) return pending.drillRun;
  return undefined;
}

/** The recovery point a drill clone was made of: its drill-of key, or (pending) the point's own self. */
function cloneOf(vm: DrillVm, jobId: string): string | undefined {
  return ownDrill(vm, ROLE.drill, jobId) ? vm.other_config[KEY.drillOf] : vm.other_config[KEY.self];
}

export interface DrillSweepPlan {
  /** Drill clones to stop (if not halted) and destroy, with the run that made them. */
  vms: { ref: string; uuid: string; running: boolean; run: string }[];
  /** Their disks, used by no other VM. */
  vdis: { ref: string; uuid: string }[];
}

/**
 * What is left of drills other than `liveRun` (the drill in progress, if any): every drill clone
 * of the job and its disks that no other VM uses. A disk of a tagged clone must carry its own
 * drill-disk keys (and goes also when its clone is already gone); a disk of a pending clone (the recovery point's keys, a foreign self) goes only
 * when that clone is its only user — VM.clone made it for that clone, so nothing else can depend on it.
 */
export function planDrillSweep(input: {
  jobId: string;
  liveRun?: string;
  /** Teardown: only this drill run's objects. */
  only?: string;
  /** Teardown of one point: only the clone of this recovery point (tagged, or pending: its self). */
  point?: string;
  vms: DrillVm[];
  vdis: DrillVdi[];
}): DrillSweepPlan {
  const plan: DrillSweepPlan = { vms: [], vdis: [] };
  const pending = new Set<string>();
  const gone = new Set<string>();
  for (const vm of input.vms) {
    const run = drillRunOf(vm, input.jobId);
    if (run === undefined || run === input.liveRun) continue;
    if (input.only !== undefined && run !== input.only) continue;
    if (input.point !== undefined && cloneOf(vm, input.jobId) !== input.point) continue;
    plan.vms.push({ ref: vm.ref, uuid: vm.uuid, running: vm.power_state !== 'Halted', run });
    gone.add(vm.ref);
    if (!ownDrill(vm, ROLE.drill, input.jobId)) pending.add(vm.ref);
  }
  for (const vdi of input.vdis) {
    // Used by no VM that stays (an orphan, after a teardown that died between VM.destroy and VDI.destroy).
    if (!vdi.vms.every((ref) => gone.has(ref))) continue;
    const run = vdi.other_config[KEY.drillRun];
    const tagged =
      ownDrill(vdi, ROLE.drillDisk, input.jobId) &&
      run !== input.liveRun &&
      (input.only === undefined || run === input.only) &&
      // one point's teardown: its own clone's disks only (an orphan goes with the whole drill's)
      (input.point === undefined || (vdi.vms.length > 0 && vdi.vms.every((ref) => gone.has(ref))));
    const ofPending = vdi.vms.length > 0 && vdi.vms.every((ref) => pending.has(ref));
    if (tagged || ofPending) plan.vdis.push({ ref: vdi.ref, uuid: vdi.uuid });
  }
  return plan;
}

/** Recovery points (uuids) that a drill clone of this job still exists for: retention keeps them. */
export function pointsUnderDrill(vms: DrillVm[], jobId: string): Set<string> {
  const out = new Set<string>();
  for (const vm of vms) {
    if (!ownDrill(vm, ROLE.drill, jobId)) continue;
    const of = vm.other_config[KEY.drillOf];
    if (of) out.add(of);
  }
  return out;
}

/** Retention with drills: a point being drilled moves from `delete` to `keep` until the drill ends. */
export function keepDrilled<T extends { uuid: string }>(
  plan: { keep: T[]; delete: T[] },
  drilled: Set<string>,
): { keep: T[]; delete: T[] } {
  return {
    keep: [...plan.keep, ...plan.delete.filter((p) => drilled.has(p.uuid))],
    delete: plan.delete.filter((p) => !drilled.has(p.uuid)),
  };
}

/** The newest-first points to drill: the one asked for, else the newest of each VM. */
export function pointsToDrill<T extends { uuid: string; other_config: Record<string, string> }>(
  newestFirst: T[],
  o: { vm?: string; point?: string },
): T[] {
  if (o.point) return newestFirst.filter((p) => p.uuid === o.point);
  const seen = new Set<string>();
  const out: T[] = [];
  for (const p of newestFirst) {
    const vm = p.other_config[KEY.vm] ?? '';
    if (seen.has(vm) || (o.vm && vm !== o.vm)) continue;
    seen.add(vm);
    out.push(p);
  }
  return out;
}

export type DrillResult =
  | { passed: true; at: string; bootSeconds: number }
  | { passed: false; at: string; reason: string };

/** The `xcr:drill` value written on the recovery point, and back. */
export function formatDrillResult(r: DrillResult): string {
  return r.passed ? `passed ${r.at} ${r.bootSeconds}s` : `failed ${r.at}: ${r.reason}`;
}

export function parseDrillResult(v: string | undefined): DrillResult | undefined {
  if (!v) return undefined;
  const ok = /^passed (\S+) ([\d.]+)s$/.exec(v);
  if (ok) return { passed: true, at: ok[1]!, bootSeconds: Number(ok[2]) };
  const bad = /^failed (\S+): (.*)$/s.exec(v);
  return bad ? { passed: false, at: bad[1]!, reason: bad[2]! } : undefined;
}

/**
 * drill.every { afterRuns: N }: after a successful run, is a drill due? The count is kept on the
 * recovery points themselves (no other store, the same locally and on AWS): a drill marks the
 * points it drilled (`xcr:drill`), so a VM whose N newest points carry no mark has had N
 * successful runs since its last drill. Retention keeps at least N points (config validation).
 */
export function drillDueAfterRuns<T extends { other_config: Record<string, string> }>(
  newestFirst: T[],
  afterRuns: number,
): { due: boolean; reason: string } {
  const since = new Map<string, number>();
  const drilled = new Set<string>();
  for (const p of newestFirst) {
    const vm = p.other_config[KEY.vm] ?? '';
    if (drilled.has(vm)) continue;
    if (parseDrillResult(p.other_config[KEY.drill])) drilled.add(vm);
    else since.set(vm, (since.get(vm) ?? 0) + 1);
  }
  const most = Math.max(0, ...since.values());
  return most >= afterRuns
    ? {
        due: true,
        reason: `${most} successful run(s) since the last drill (drill.every.afterRuns ${afterRuns})`,
      }
    : { due: false, reason: `${most} of ${afterRuns} successful run(s) since the last drill` };
}
