import { KEY, ROLE, STATUS } from '../metadata.js';
import { inScope, type Owned, ownershipOf, type RunScope } from './ownership.js';

/**
 * What a sweep removes after interrupted or failed runs, as a pure decision over plain records. The
 * same rules serve the sweep at the start of a run (scope: every other run of the job) and the
 * rollback of a failed VM (scope: that run and VM). Nothing is destroyed unless it provably is this
 * job's, in scope and unfinished; a complete recovery point, an exported base and anything a user
 * copied from them are never touched (copies are reported).
 */
export interface SweepVm extends Owned {
  ref: string;
  is_a_snapshot: boolean;
  power_state: string;
  /** uuid of the VM this is a snapshot of ('' when not a snapshot or unknown). */
  snapshotOf: string;
}

export interface SweepVdi extends Owned {
  ref: string;
  is_a_snapshot: boolean;
  /** Refs of the VMs with a VBD to this VDI. */
  vms: string[];
}

export interface SweepInput {
  jobId: string;
  scope: RunScope;
  vms: SweepVm[];
  vdis: SweepVdi[];
  /** Source side only: source snapshot uuid → chain length, for each snapshot a verified complete
   *  recovery point of this job was made from (an interrupted commit: promote, do not destroy). */
  completedSnapshots?: Map<string, number>;
}

export interface SweepAction {
  cls: 'VM' | 'VDI';
  ref: string;
  uuid: string;
  why: string;
}

export interface SweepPlan {
  /** In order: VMs (VM.destroy, their disks are listed separately), then VDIs. */
  destroy: SweepAction[];
  /** Source snapshots to mark exported with this chain length. */
  promote: (SweepAction & { chain: number })[];
  /** Objects deliberately left alone that a person should know about (copies, running VMs…). */
  report: SweepAction[];
}

const act = (cls: 'VM' | 'VDI', o: { ref: string; uuid: string }, why: string): SweepAction => ({
  cls,
  ref: o.ref,
  uuid: o.uuid,
  why,
});

/** True when a VM is a verified complete recovery point of the job. */
export function isVerifiedRecoveryPoint(vm: SweepVm | (Owned & { is_a_snapshot: boolean }), jobId: string) {
  const own = ownershipOf(vm, jobId);
  return (
    own.kind === 'ours' &&
    own.verified &&
    !vm.is_a_snapshot &&
    vm.other_config[KEY.role] === ROLE.recoveryPoint &&
    vm.other_config[KEY.status] === STATUS.complete
  );
}

/** An object without `xcr:self` (made before self stamps, or a crash right after its creation)
 *  counts as ours only while it is unfinished. */
function unfinished(o: Owned): boolean {
  const status = o.other_config[KEY.status];
  return status === undefined || status === STATUS.pending;
}

function planVms(input: SweepInput, plan: SweepPlan, destroyed: Set<string>): void {
  for (const vm of input.vms) {
    const own = ownershipOf(vm, input.jobId);
    if (own.kind === 'copy') {
      if (vm.other_config[KEY.role]) plan.report.push(act('VM', vm, `a copy of ${own.of}, not xcr's`));
      continue;
    }
    if (own.kind !== 'ours') continue;
    const role = vm.other_config[KEY.role];
    const status = vm.other_config[KEY.status];
    const isSourceSnapshot = vm.is_a_snapshot && (role === ROLE.sourceSnapshot || role === undefined);
    if (isSourceSnapshot) {
      // A snapshot of a user's clone inherits the clone's keys: a real source snapshot is a snapshot
      // of the VM it names (an untagged pending one names none yet).
      const vmUuid = vm.other_config[KEY.vm] ?? vm.snapshotOf;
      if (vm.other_config[KEY.vm] !== undefined && vm.other_config[KEY.vm] !== vm.snapshotOf) {
        plan.report.push(act('VM', vm, 'a snapshot of a copy, not xcr’s'));
        continue;
      }
      if (status === STATUS.exported || !inScope(input.scope, own.run, vmUuid)) continue;
      if (!own.verified && !unfinished(vm)) continue;
      const chain = input.completedSnapshots?.get(vm.uuid);
      if (chain !== undefined) {
        plan.promote.push({ ...act('VM', vm, 'its recovery point is complete'), chain });
        continue;
      }
      plan.destroy.push(act('VM', vm, `pending source snapshot of run ${own.run}`));
      destroyed.add(vm.ref);
      continue;
    }
    if (role !== ROLE.recoveryPoint) continue;
    if (vm.is_a_snapshot) {
      plan.report.push(act('VM', vm, 'a snapshot of a recovery point, not xcr’s'));
      continue;
    }
    if (status === STATUS.complete && own.verified) continue;
    if (!inScope(input.scope, own.run, vm.other_config[KEY.vm])) continue;
    if (!own.verified && !unfinished(vm)) {
      plan.report.push(act('VM', vm, 'marked complete without xcr:self: not provably xcr’s'));
      continue;
    }
    if (vm.power_state !== 'Halted') {
      plan.report.push(act('VM', vm, `unfinished recovery point is ${vm.power_state.toLowerCase()}`));
      continue;
    }
    plan.destroy.push(act('VM', vm, `unfinished recovery point of run ${own.run}`));
    destroyed.add(vm.ref);
  }
}

function planVdis(input: SweepInput, plan: SweepPlan, destroyed: Set<string>): void {
  const byRef = new Map(input.vms.map((vm) => [vm.ref, vm]));
  for (const vdi of input.vdis) {
    const own = ownershipOf(vdi, input.jobId);
    if (own.kind === 'copy') {
      if (vdi.other_config[KEY.role]) plan.report.push(act('VDI', vdi, `a copy of ${own.of}, not xcr's`));
      continue;
    }
    const users = vdi.vms.filter((ref) => !destroyed.has(ref));
    if (own.kind === 'none') {
      // VM.snapshot made it with a snapshot that was destroyed before its disks were tagged.
      if (vdi.is_a_snapshot && vdi.vms.length > 0 && users.length === 0)
        plan.destroy.push(act('VDI', vdi, 'disk of an untagged pending source snapshot'));
      continue;
    }
    if (own.kind !== 'ours') continue;
    const role = vdi.other_config[KEY.role];
    const snapshotDisk = role === ROLE.sourceSnapshot && vdi.is_a_snapshot;
    const replicaDisk = role === ROLE.replicaDisk && !vdi.is_a_snapshot;
    if (!snapshotDisk && !replicaDisk) continue;
    const vmUuid = vdi.other_config[KEY.vm];
    const ownerDestroyed = vdi.vms.length > 0 && users.length === 0;
    if (!ownerDestroyed && !inScope(input.scope, own.run, vmUuid)) continue;
    if (users.length > 0) {
      const foreign = users.filter((ref) => {
        const vm = byRef.get(ref);
        return !vm || ownershipOf(vm, input.jobId).kind !== 'ours';
      });
      if (foreign.length > 0 && !users.some((ref) => isVerifiedRecoveryPoint(byRef.get(ref)!, input.jobId)))
        plan.report.push(act('VDI', vdi, 'in use by a VM that is not xcr’s'));
      continue;
    }
    if (!own.verified && !(snapshotDisk || unfinished(vdi))) {
      plan.report.push(act('VDI', vdi, 'finished disk without xcr:self: not provably xcr’s'));
      continue;
    }
    plan.destroy.push(act('VDI', vdi, `${snapshotDisk ? 'snapshot' : 'replica'} disk of run ${own.run}`));
  }
}

export function planSweep(input: SweepInput): SweepPlan {
  const plan: SweepPlan = { destroy: [], promote: [], report: [] };
  const destroyed = new Set<string>();
  planVms(input, plan, destroyed);
  planVdis(input, plan, destroyed);
  return plan;
}
