import type { ObjectSelector } from '../config/schema.js';
import type { VbdRecord, VdiRecord, VmRecord, Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';

export interface Ref<T> {
  ref: string;
  rec: T;
}

export interface DiskRef {
  userdevice: string;
  vbd: Ref<VbdRecord>;
  vdi: Ref<VdiRecord>;
}

export async function findVmByUuid(xapi: Xapi, uuid: string): Promise<Ref<VmRecord>> {
  let ref: string;
  try {
    ref = await xapi.getByUuid('VM', uuid);
  } catch (err) {
    if ((err as { code?: string }).code === 'UUID_INVALID') {
      throw new XcrPermanentError(
        'VM_NOT_FOUND',
        `no VM with uuid ${uuid} on the source pool; fix the job's vms`,
      );
    }
    throw err;
  }
  return { ref, rec: await xapi.getRecord('VM', ref) };
}

/** The VM's disks (VBDs of type Disk with a VDI), ordered by userdevice. */
export async function vmDisks(xapi: Xapi, vm: VmRecord): Promise<DiskRef[]> {
  const disks: DiskRef[] = [];
  for (const vbdRef of vm.VBDs) {
    const vbd = await xapi.getRecord('VBD', vbdRef);
    if (vbd.type !== 'Disk' || vbd.empty || vbd.VDI === 'OpaqueRef:NULL') continue;
    const vdi = await xapi.getRecord('VDI', vbd.VDI);
    disks.push({
      userdevice: vbd.userdevice,
      vbd: { ref: vbdRef, rec: vbd },
      vdi: { ref: vbd.VDI, rec: vdi },
    });
  }
  return disks.sort((a, b) => Number(a.userdevice) - Number(b.userdevice));
}

function describe(selector: ObjectSelector): string {
  return 'uuid' in selector ? `uuid ${selector.uuid}` : `name "${selector.name}"`;
}

async function findOne<K extends 'SR' | 'network'>(
  xapi: Xapi,
  cls: K,
  selector: ObjectSelector,
  field: string,
): Promise<string> {
  const all = await xapi.getAllRecords(cls);
  const matches = [...all].filter(([, rec]) =>
    'uuid' in selector ? rec.uuid === selector.uuid : rec.name_label === selector.name,
  );
  if (matches.length === 1) return matches[0]![0];
  const known = [...all.values()].map((r) => `"${r.name_label}"`).join(', ');
  if (matches.length === 0) {
    throw new XcrPermanentError(
      `${cls.toUpperCase()}_NOT_FOUND`,
      `no ${cls} with ${describe(selector)} on the destination pool; fix ${field} (available: ${known || 'none'})`,
    );
  }
  throw new XcrPermanentError(
    `${cls.toUpperCase()}_AMBIGUOUS`,
    `${matches.length} ${cls}s have ${describe(selector)}; select it by uuid in ${field}`,
  );
}

export function findSr(xapi: Xapi, selector: ObjectSelector): Promise<string> {
  return findOne(xapi, 'SR', selector, 'destination.sr');
}

/** VMs carrying a tag, excluding templates, snapshots and dom0 (for jobs that select by tag). */
export async function vmsWithTag(xapi: Xapi, tag: string): Promise<VmRecord[]> {
  const all = await xapi.getAllRecords('VM');
  return [...all.values()].filter(
    (vm) => !vm.is_a_template && !vm.is_a_snapshot && !vm.is_control_domain && vm.tags.includes(tag),
  );
}
