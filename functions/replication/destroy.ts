import type { Xapi } from '../xapi/index.js';

/**
 * Destroys a VM record and then the VDIs of its disks (VM.destroy never deletes VDIs).
 * Only for VMs xcr created (snapshots it took, replicas it wrote). Idempotent: objects already
 * gone are skipped.
 */
export async function destroyVmWithDisks(xapi: Xapi, vmRef: string): Promise<void> {
  let vbds: string[];
  try {
    vbds = (await xapi.getRecord('VM', vmRef)).VBDs;
  } catch (err) {
    if ((err as { code?: string }).code === 'HANDLE_INVALID') return;
    throw err;
  }
  const vdis: string[] = [];
  for (const vbdRef of vbds) {
    try {
      const vbd = await xapi.getRecord('VBD', vbdRef);
      if (vbd.type === 'Disk' && !vbd.empty && vbd.VDI !== 'OpaqueRef:NULL') vdis.push(vbd.VDI);
    } catch (err) {
      if ((err as { code?: string }).code !== 'HANDLE_INVALID') throw err;
    }
  }
  await xapi.destroy('VM', vmRef);
  for (const vdi of vdis) await xapi.destroy('VDI', vdi);
}
