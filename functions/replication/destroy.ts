import type { VmRecord, Xapi } from '../xapi/index.js';
import { type DiskOfVm, disksToDestroyWith } from './rules/disks.js';

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/**
 * Destroys a VM xcr created (an expired recovery point, a superseded base snapshot) and then those of
 * its disks that are the job's own and used by no other VM (VM.destroy never deletes VDIs).
 * Idempotent: objects already gone are skipped.
 */
export async function destroyVmWithDisks(
  xapi: Xapi,
  vmRef: string,
  jobId: string,
  /** the VM's record when the caller has just read it */
  rec?: VmRecord,
): Promise<void> {
  let vbds: string[];
  try {
    vbds = (rec ?? (await xapi.getRecord('VM', vmRef))).VBDs;
  } catch (err) {
    if (gone(err)) return;
    throw err;
  }
  // the VM's disks side by side (a handful)
  const read = await Promise.all(
    vbds.map(async (vbdRef): Promise<DiskOfVm | undefined> => {
      try {
        const vbd = await xapi.getRecord('VBD', vbdRef);
        if (vbd.type !== 'Disk' || vbd.empty || vbd.VDI === 'OpaqueRef:NULL') return undefined;
        const vdi = await xapi.getRecord('VDI', vbd.VDI);
        // the VBD just read is one of them
        const vms = await Promise.all(
          vdi.VBDs.map(async (ref) => (ref === vbdRef ? vbd : await xapi.getRecord('VBD', ref)).VM),
        );
        return { ref: vbd.VDI, uuid: vdi.uuid, other_config: vdi.other_config, vms };
      } catch (err) {
        if (!gone(err)) throw err;
        return undefined;
      }
    }),
  );
  const disks = read.filter((d): d is DiskOfVm => d !== undefined);
  await xapi.destroy('VM', vmRef);
  for (const d of disksToDestroyWith(vmRef, disks, jobId)) {
    try {
      await xapi.destroy('VDI', d.ref);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
}
