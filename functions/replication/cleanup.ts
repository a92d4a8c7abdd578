import type { VmRecord, Xapi } from '../xapi/index.js';
import { destroyVmWithDisks } from './destroy.js';
import { KEY, STATUS } from './metadata.js';
import { selectBase } from './rules/base.js';
import type { RunScope } from './rules/ownership.js';
import { recoveryPointsOf } from './rules/retention.js';
import { planSweep, type SweepPlan, type SweepVdi, type SweepVm } from './rules/sweep.js';
import { type KnownSnapshots, snapshotRecords } from './snapshot.js';
import { mergeOtherConfig } from './tagging.js';

/**
 * Removing what runs left behind: reads the pool's VMs and VDIs as plain records, lets the pure
 * sweep rules decide (`rules/sweep.ts`), then carries the decision out. Objects already gone are
 * skipped, so a sweep interrupted half-way is simply repeated by the next one.
 */
export interface SweepReport {
  destroyed: string[];
  promoted: string[];
  /** Objects left alone on purpose (a user's copies, a running VM…), with the reason. */
  reported: string[];
}

/** A pool's VMs and VDIs as the sweep rules read them (also the drill and failover sweeps' input). */
export interface PoolRecords {
  vms: SweepVm[];
  vdis: SweepVdi[];
}

/**
 * The pool's VMs and VDIs as the sweep rules read them (also the drill sweep's input). A disk's users
 * come from the two ends of its VBDs, `VDI.VBDs` and `VM.VBDs`, so the pool's VBDs need no listing
 * of their own; a VBD no listed VM claims (a VM made between the two listings) stands for an unknown
 * user, so that disk is never taken for an orphan.
 */
export async function sweepRecords(xapi: Xapi): Promise<PoolRecords> {
  const [vms, vdis] = await Promise.all([xapi.getAllRecords('VM'), xapi.getAllRecords('VDI')]);
  const vmOfVbd = new Map<string, string>();
  for (const [ref, vm] of vms) for (const vbd of vm.VBDs) vmOfVbd.set(vbd, ref);
  const usedBy = (vbds: string[]) => vbds.map((vbd) => vmOfVbd.get(vbd) ?? vbd);
  return {
    vms: [...vms].map(([ref, vm]) => ({
      ref,
      uuid: vm.uuid,
      other_config: vm.other_config,
      name_label: vm.name_label,
      is_a_snapshot: vm.is_a_snapshot,
      power_state: vm.power_state,
      snapshotOf: vms.get(vm.snapshot_of)?.uuid ?? '',
    })),
    vdis: [...vdis].map(([ref, vdi]) => ({
      ref,
      uuid: vdi.uuid,
      other_config: vdi.other_config,
      is_a_snapshot: vdi.is_a_snapshot,
      vms: usedBy(vdi.VBDs),
    })),
  };
}

/**
 * The records as a new listing would show them once `removed` ("VM <uuid>" / "VDI <uuid>", as the
 * sweeps report them) are gone: a destroyed VM's VBDs go with it, so its disks no longer name it.
 * Lets one listing per run serve several sweeps of the same pool in a row.
 */
export function forgetRemoved(records: PoolRecords, removed: readonly string[]): PoolRecords {
  if (removed.length === 0) return records;
  const gone = new Set(removed);
  const goneVms = new Set(records.vms.filter((vm) => gone.has(`VM ${vm.uuid}`)).map((vm) => vm.ref));
  return {
    vms: records.vms.filter((vm) => !goneVms.has(vm.ref)),
    vdis: records.vdis
      .filter((vdi) => !gone.has(`VDI ${vdi.uuid}`))
      .map((vdi) =>
        vdi.vms.some((ref) => goneVms.has(ref))
          ? { ...vdi, vms: vdi.vms.filter((ref) => !goneVms.has(ref)) }
          : vdi,
      ),
  };
}

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/** A source snapshot a complete recovery point was made from: its chain length and the point's uuid. */
export interface CompletedSnapshot {
  chain: number;
  recoveryPoint: string;
}

async function carryOut(
  xapi: Xapi,
  plan: SweepPlan,
  vms: SweepVm[],
  completed?: Map<string, CompletedSnapshot>,
): Promise<SweepReport> {
  const report: SweepReport = { destroyed: [], promoted: [], reported: [] };
  const byRef = new Map(vms.map((vm) => [vm.ref, vm]));
  for (const p of plan.promote) {
    const oc = byRef.get(p.ref)!.other_config;
    const rp = completed?.get(p.uuid)?.recoveryPoint;
    await mergeOtherConfig(xapi, 'VM', p.ref, oc, {
      [KEY.status]: STATUS.exported,
      [KEY.chain]: String(p.chain),
      ...(rp ? { [KEY.recoveryPoint]: rp } : {}),
    });
    report.promoted.push(`VM ${p.uuid}`);
  }
  for (const d of plan.destroy) {
    try {
      await xapi.destroy(d.cls, d.ref);
      report.destroyed.push(`${d.cls} ${d.uuid}`);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  report.reported = plan.report.map((r) => `${r.cls} ${r.uuid}: ${r.why}`);
  return report;
}

/** Sweeps one pool (source or destination: the rules tell the roles apart). */
export async function sweep(
  xapi: Xapi,
  jobId: string,
  scope: RunScope,
  completed?: Map<string, CompletedSnapshot>,
  /** The pool's records when the caller has just read them (one listing per run). */
  records?: PoolRecords,
): Promise<SweepReport> {
  const { vms, vdis } = records ?? (await sweepRecords(xapi));
  const completedSnapshots = completed && new Map([...completed].map(([snap, c]) => [snap, c.chain]));
  const plan = planSweep({ jobId, scope, vms, vdis, completedSnapshots });
  return carryOut(xapi, plan, vms, completed);
}

/** Source snapshots that complete recovery points (among the destination's VMs) were made from. */
export function snapshotsWithRecoveryPoints(
  destVms: SweepVm[],
  jobId: string,
): Map<string, CompletedSnapshot> {
  const out = new Map<string, CompletedSnapshot>();
  for (const rp of recoveryPointsOf(destVms, jobId)) {
    const snap = rp.other_config[KEY.sourceSnapshot];
    if (snap) out.set(snap, { chain: Number(rp.other_config[KEY.chain] ?? 0) || 0, recoveryPoint: rp.uuid });
  }
  return out;
}

/** Keeps only the newest exported snapshot of a source VM (the next delta's base). */
export async function pruneOldBases(
  xapi: Xapi,
  jobId: string,
  vm: VmRecord,
  known?: KnownSnapshots,
): Promise<string[]> {
  const { superseded } = selectBase(await snapshotRecords(xapi, vm, known), jobId, vm.uuid);
  for (const s of superseded) await destroyVmWithDisks(xapi, s.ref, jobId, s.rec);
  return superseded.map((s) => s.uuid);
}

/**
 * Carries out a plan of VMs (stopped first when running) and then VDIs to remove, as the drill and
 * failover sweeps make them; objects already gone are skipped. Returns "VM <uuid>" / "VDI <uuid>".
 */
export async function removePlanned(
  xapi: Xapi,
  plan: { vms: { ref: string; uuid: string; running: boolean }[]; vdis: { ref: string; uuid: string }[] },
): Promise<string[]> {
  const removed: string[] = [];
  for (const vm of plan.vms) {
    try {
      if (vm.running) {
        const ps = await xapi.call<string>('VM.get_power_state', vm.ref);
        if (ps !== 'Halted') await xapi.callAsync('VM.hard_shutdown', vm.ref);
      }
      await xapi.destroy('VM', vm.ref);
      removed.push(`VM ${vm.uuid}`);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  for (const vdi of plan.vdis) {
    try {
      await xapi.destroy('VDI', vdi.ref);
      removed.push(`VDI ${vdi.uuid}`);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  return removed;
}
