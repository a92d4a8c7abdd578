import { type Owned, ownershipOf } from './ownership.js';

export interface DiskOfVm extends Owned {
  ref: string;
  /** Refs of every VM with a VBD to this VDI (the VM being destroyed included). */
  vms: string[];
}

/**
 * Which disks go with a VM xcr destroys (an expired recovery point, a superseded base): only the
 * job's own disks that no other VM uses. A disk a user swapped in, a copy, another job's disk or a
 * disk a user also attached elsewhere stays.
 */
export function disksToDestroyWith<T extends DiskOfVm>(vmRef: string, disks: T[], jobId: string): T[] {
  return disks.filter((d) => ownershipOf(d, jobId).kind === 'ours' && d.vms.every((ref) => ref === vmRef));
}
