import type { VmRecord, Xapi } from '../xapi/index.js';
import type { DiskRef, Ref } from './inventory.js';
import { vmDisks } from './inventory.js';
import { KEY, pendingSnapshotName, ROLE, STATUS, snapshotName } from './metadata.js';
import type { PlanBase } from './plan.js';
import { byTimeDesc, mergeOtherConfig } from './tagging.js';

export interface SnapshotRequest {
  jobId: string;
  runId: string;
  vm: Ref<VmRecord>;
  /** ISO time of the run, stored on everything it creates. */
  time: string;
}

async function snapshotsOf(xapi: Xapi, vm: VmRecord): Promise<Ref<VmRecord>[]> {
  const out: Ref<VmRecord>[] = [];
  for (const ref of vm.snapshots) {
    try {
      out.push({ ref, rec: await xapi.getRecord('VM', ref) });
    } catch (err) {
      if ((err as { code?: string }).code !== 'HANDLE_INVALID') throw err;
    }
  }
  return out;
}

/**
 * Takes (or finds, when this step runs again for the same run) the run's snapshot of a source VM and
 * tags it and its disks as pending for this job. The snapshot is created under a name carrying the
 * run id, so a crash between VM.snapshot and tagging still leaves something a retry or a later sweep
 * recognises.
 */
export async function takeSourceSnapshot(
  xapi: Xapi,
  req: SnapshotRequest,
): Promise<{ snapshot: Ref<VmRecord>; disks: DiskRef[] }> {
  const pendingName = pendingSnapshotName(req.jobId, req.runId);
  const existing = (await snapshotsOf(xapi, req.vm.rec)).find(
    (s) => s.rec.other_config[KEY.run] === req.runId || s.rec.name_label === pendingName,
  );
  const ref = existing?.ref ?? (await xapi.callAsync<string>('VM.snapshot', req.vm.ref, pendingName));
  const rec = await xapi.getRecord('VM', ref);
  const keys = {
    [KEY.job]: req.jobId,
    [KEY.vm]: req.vm.rec.uuid,
    [KEY.run]: req.runId,
    [KEY.role]: ROLE.sourceSnapshot,
    [KEY.time]: req.time,
  };
  const disks = await vmDisks(xapi, rec);
  for (const disk of disks) {
    if (disk.vdi.rec.other_config[KEY.run] === req.runId) continue;
    await mergeOtherConfig(xapi, 'VDI', disk.vdi.ref, disk.vdi.rec.other_config, {
      ...keys,
      [KEY.userdevice]: disk.userdevice,
    });
  }
  if (rec.other_config[KEY.run] !== req.runId) {
    await mergeOtherConfig(xapi, 'VM', ref, rec.other_config, { ...keys, [KEY.status]: STATUS.pending });
  }
  if (rec.name_label === pendingName) {
    await xapi.call('VM.set_name_label', ref, snapshotName(req.jobId, req.vm.rec.name_label, req.time));
  }
  return { snapshot: { ref, rec: await xapi.getRecord('VM', ref) }, disks };
}

/** This job's snapshots of a VM, newest first. */
export async function jobSnapshots(xapi: Xapi, jobId: string, vm: VmRecord): Promise<Ref<VmRecord>[]> {
  return (await snapshotsOf(xapi, vm))
    .filter((s) => s.rec.other_config[KEY.job] === jobId)
    .sort(byTimeDesc(KEY.time));
}

/** The newest snapshot of this job whose content reached the destination: the next delta's base. */
export async function findExportedBase(
  xapi: Xapi,
  jobId: string,
  vm: VmRecord,
): Promise<{ snapshot: Ref<VmRecord>; base: PlanBase; disks: DiskRef[] } | undefined> {
  const exported = (await jobSnapshots(xapi, jobId, vm)).find(
    (s) => s.rec.other_config[KEY.status] === STATUS.exported,
  );
  if (!exported) return undefined;
  const disks = await vmDisks(xapi, exported.rec);
  return {
    snapshot: exported,
    disks,
    base: {
      snapshotUuid: exported.rec.uuid,
      chain: Number(exported.rec.other_config[KEY.chain] ?? 0) || 0,
      disks: disks.map((d) => ({
        userdevice: d.userdevice,
        vdiUuid: d.vdi.rec.uuid,
        virtualSize: d.vdi.rec.virtual_size,
      })),
    },
  };
}
