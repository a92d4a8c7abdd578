import type { Xapi } from '../xapi/index.js';
import { type DiskOfVm, disksToDestroyWith } from './rules/disks.js';

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/**
 * Destroys a VM xcr created (an expired recovery point, a superseded base snapshot) and then those of
 * its disks that are the job's own and used by no other VM (VM.destroy never deletes VDIs).
 * Idempotent: objects already gone are skipped.
 */
export async function destroyVmWithDisks(xapi: Xapi, vmRef: string, jobId: string): Promise<void> {
  let vbds: string[];
  try {
    vbds = (await xapi.getRecord('VM', vmRef)).VBDs;
  } catch (err) {
    if (gone(err)) return;
    throw err;
  }
  const disks: DiskOfVm[] = [];
  for (const vbdRef of vbds) {
    try {
      const vbd = await xapi.getRecord('VBD', vbdRef);
      if (vbd.type !== 'Disk' || vbd.empty || vbd.VDI === 'OpaqueRef:NULL') continue;
      const vdi = await xapi.getRecord('VDI', vbd.VDI);
      const vms = await Promise.all(vdi.VBDs.map(async (ref) => (await xapi.getRecord('VBD', ref)).VM));
      disks.push({ ref: vbd.VDI, uuid: vdi.uuid, other_config: vdi.other_config, vms });
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  await xapi.destroy('VM', vmRef);
  for (const d of disksToDestroyWith(vmRef, disks, jobId)) {
    try {
      await xapi.destroy('VDI', d.ref);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
}
