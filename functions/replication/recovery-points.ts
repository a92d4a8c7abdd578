import type { VmRecord, Xapi } from '../xapi/index.js';
import { destroyVmWithDisks } from './destroy.js';
import type { Ref } from './inventory.js';
import { vmDisks } from './inventory.js';
import { KEY, ROLE, START_BLOCKED_REASON, STATUS } from './metadata.js';
import type { PlanRecoveryPoint } from './plan.js';
import { byTimeDesc } from './tagging.js';

/**
 * Recovery-point layout on the destination: one halted replica VM per successful run, whose
 * disks are this job's copies of the source snapshot (a delta run clones the previous recovery
 * point's disks and writes only the changed blocks into the clones). Start is blocked; users clone
 * a recovery point to use it. A recovery point is never written after it is complete, and a run
 * deletes old ones only after its own is complete.
 */
export function isCompleteRecoveryPoint(vm: VmRecord, jobId: string, vmUuid?: string): boolean {
  const oc = vm.other_config;
  return (
    !vm.is_a_snapshot &&
    oc[KEY.job] === jobId &&
    oc[KEY.role] === ROLE.recoveryPoint &&
    oc[KEY.status] === STATUS.complete &&
    oc[KEY.self] === vm.uuid &&
    (vmUuid === undefined || oc[KEY.vm] === vmUuid)
  );
}

/** Complete recovery points of a job (optionally of one source VM), newest first. */
export async function listRecoveryPoints(
  xapi: Xapi,
  jobId: string,
  vmUuid?: string,
): Promise<Ref<VmRecord>[]> {
  const all = await xapi.getAllRecords('VM');
  return [...all]
    .filter(([, rec]) => isCompleteRecoveryPoint(rec, jobId, vmUuid))
    .map(([ref, rec]) => ({ ref, rec }))
    .sort(byTimeDesc(KEY.time));
}

/** Reads a recovery point for planning, with the reason it may not serve as a delta base. */
export async function inspectRecoveryPoint(
  xapi: Xapi,
  rp: Ref<VmRecord>,
  jobId: string,
  srRef: string,
): Promise<PlanRecoveryPoint> {
  const disks = await vmDisks(xapi, rp.rec);
  let tampered: string | undefined;
  if (rp.rec.power_state !== 'Halted') tampered = `it is ${rp.rec.power_state.toLowerCase()}`;
  else if (rp.rec.blocked_operations.start !== START_BLOCKED_REASON) tampered = 'its start was unblocked';
  else if (disks.some((d) => d.vdi.rec.other_config[KEY.job] !== jobId)) tampered = 'a disk was replaced';
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
  };
}

/** Retention: keeps the `keep` newest recovery points of a VM, destroys the older ones. */
export async function applyRetention(
  xapi: Xapi,
  jobId: string,
  vmUuid: string,
  keep: number,
): Promise<string[]> {
  const rps = await listRecoveryPoints(xapi, jobId, vmUuid);
  const old = rps.slice(Math.max(1, keep));
  for (const rp of old) await destroyVmWithDisks(xapi, rp.ref);
  return old.map((rp) => rp.rec.uuid);
}
