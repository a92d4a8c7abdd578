import type { VmRecord, Xapi } from '../xapi/index.js';
import { destroyVmWithDisks } from './destroy.js';
import type { Ref } from './inventory.js';
import { vmDisks } from './inventory.js';
import { KEY, START_BLOCKED_REASON } from './metadata.js';
import { keepDrilled, pointsUnderDrill } from './rules/drill.js';
import type { PlanRecoveryPoint } from './rules/full-or-delta.js';
import { ownershipOf } from './rules/ownership.js';
import { planRetention, recoveryPointsOf } from './rules/retention.js';

/**
 * Recovery-point layout on the destination: one halted replica VM per successful run, whose
 * disks are this job's copies of the source snapshot (a delta run clones the previous recovery
 * point's disks and writes only the changed blocks into the clones). Start is blocked; users clone
 * a recovery point to use it. A recovery point is never written after it is complete, and a run
 * deletes old ones only after its own is complete.
 * Which VMs are recovery points is decided by `rules/retention.ts`.
 */
/** Complete recovery points of a job (optionally of one source VM), newest first. */
export async function listRecoveryPoints(
  xapi: Xapi,
  jobId: string,
  vmUuid?: string,
): Promise<Ref<VmRecord>[]> {
  const all = [...(await xapi.getAllRecords('VM'))].map(([ref, rec]) => ({ ...rec, ref, rec }));
  return recoveryPointsOf(all, jobId, vmUuid).map(({ ref, rec }) => ({ ref, rec }));
}

/**
 * The newest complete recovery point of a source VM, for planning. The exported base snapshot names
 * the point made from it (`xcr:recovery-point`): one get_by_uuid. Only when there is no base (a first
 * run), the base predates that key or the point is gone, the destination's VMs are listed.
 */
export async function newestRecoveryPoint(
  xapi: Xapi,
  jobId: string,
  vmUuid: string,
  base: VmRecord | undefined,
): Promise<Ref<VmRecord> | undefined> {
  const linked = base?.other_config[KEY.recoveryPoint];
  if (linked) {
    const found = await pointByUuid(xapi, linked);
    if (found && recoveryPointsOf([{ ...found.rec, ref: found.ref }], jobId, vmUuid).length === 1)
      return found;
  }
  return (await listRecoveryPoints(xapi, jobId, vmUuid))[0];
}

async function pointByUuid(xapi: Xapi, uuid: string): Promise<Ref<VmRecord> | undefined> {
  try {
    const ref = await xapi.getByUuid('VM', uuid);
    return { ref, rec: await xapi.getRecord('VM', ref) };
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'UUID_INVALID' || code === 'HANDLE_INVALID') return undefined;
    throw err;
  }
}

/** A recovery point as planned from, with its disks' refs by uuid (so a clone need not look them up). */
export interface InspectedRecoveryPoint extends PlanRecoveryPoint {
  vdiRefs: ReadonlyMap<string, string>;
}

/** Reads a recovery point for planning, with the reason it may not serve as a delta base. */
export async function inspectRecoveryPoint(
  xapi: Xapi,
  rp: Ref<VmRecord>,
  jobId: string,
  srRef: string,
): Promise<InspectedRecoveryPoint> {
  const disks = await vmDisks(xapi, rp.rec);
  let tampered: string | undefined;
  if (rp.rec.power_state !== 'Halted') tampered = `it is ${rp.rec.power_state.toLowerCase()}`;
  else if (rp.rec.blocked_operations.start !== START_BLOCKED_REASON) tampered = 'its start was unblocked';
  else if (disks.some((d) => ownershipOf(d.vdi.rec, jobId).kind !== 'ours')) tampered = 'a disk was replaced';
  else if (disks.some((d) => d.vdi.rec.SR !== srRef)) tampered = 'its disks are on another SR than the job’s';
  return {
    uuid: rp.rec.uuid,
    sourceSnapshot: rp.rec.other_config[KEY.sourceSnapshot] ?? '',
    tampered,
    disks: disks.map((d) => ({
      userdevice: d.userdevice,
      vdiUuid: d.vdi.rec.uuid,
      virtualSize: d.vdi.rec.virtual_size,
      sourceVdi: d.vdi.rec.other_config[KEY.sourceVdi] ?? '',
    })),
    vdiRefs: new Map(disks.map((d) => [d.vdi.rec.uuid, d.vdi.ref])),
  };
}

/**
 * Retention for the VMs a run committed: keeps the `keep` newest recovery points of each, destroys
 * the older ones. One listing of the destination's VMs per run (finish-run), never one per VM. One
 * VM's failure to delete is reported for it and does not stop the others.
 */
export async function applyRetention(
  xapi: Xapi,
  jobId: string,
  vmUuids: string[],
  keep: number,
): Promise<{ expired: string[]; failed: { vmUuid: string; error: unknown }[] }> {
  const out = { expired: [] as string[], failed: [] as { vmUuid: string; error: unknown }[] };
  if (vmUuids.length === 0) return out;
  const all = [...(await xapi.getAllRecords('VM'))].map(([ref, rec]) => ({ ...rec, ref }));
  // A point a drill clone exists for stays until the drill ends (the next run deletes it then).
  const drilled = pointsUnderDrill(all, jobId);
  for (const vmUuid of vmUuids) {
    try {
      for (const rp of keepDrilled(planRetention(all, keep, jobId, vmUuid), drilled).delete) {
        await destroyVmWithDisks(xapi, rp.ref, jobId);
        out.expired.push(rp.uuid);
      }
    } catch (error) {
      out.failed.push({ vmUuid, error });
    }
  }
  return out;
}
