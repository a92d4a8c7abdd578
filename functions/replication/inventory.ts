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
  // side by side: a VM has a handful of VBDs
  const read = await Promise.all(
    vm.VBDs.map(async (vbdRef): Promise<DiskRef | undefined> => {
      const vbd = await xapi.getRecord('VBD', vbdRef);
      if (vbd.type !== 'Disk' || vbd.empty || vbd.VDI === 'OpaqueRef:NULL') return undefined;
      const vdi = await xapi.getRecord('VDI', vbd.VDI);
      return { userdevice: vbd.userdevice, vbd: { ref: vbdRef, rec: vbd }, vdi: { ref: vbd.VDI, rec: vdi } };
    }),
  );
  const disks = read.filter((d): d is DiskRef => d !== undefined);
  return disks.sort((a, b) => Number(a.userdevice) - Number(b.userdevice));
}

function describe(selector: ObjectSelector): string {
  return 'uuid' in selector ? `uuid ${selector.uuid}` : `name "${selector.name}"`;
}

/** Refs matching a selector by a targeted lookup (get_by_uuid / get_by_name_label), never a listing. */
async function lookupRefs(xapi: Xapi, cls: 'SR' | 'network', selector: ObjectSelector): Promise<string[]> {
  if ('name' in selector) return xapi.call<string[]>(`${cls}.get_by_name_label`, selector.name);
  try {
    return [await xapi.getByUuid(cls, selector.uuid)];
  } catch (err) {
    if ((err as { code?: string }).code === 'UUID_INVALID') return [];
    throw err;
  }
}

async function findOne<K extends 'SR' | 'network'>(
  xapi: Xapi,
  cls: K,
  selector: ObjectSelector,
  field: string,
  pool = 'destination',
): Promise<string> {
  const matches = await lookupRefs(xapi, cls, selector);
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) {
    // only on the error path: list the pool's objects so the message can name the alternatives
    const known = [...(await xapi.getAllRecords(cls)).values()].map((r) => `"${r.name_label}"`).join(', ');
    throw new XcrPermanentError(
      `${cls.toUpperCase()}_NOT_FOUND`,
      `no ${cls} with ${describe(selector)} on the ${pool} pool; fix ${field} (available: ${known || 'none'})`,
    );
  }
  throw new XcrPermanentError(
    `${cls.toUpperCase()}_AMBIGUOUS`,
    `${matches.length} ${cls}s have ${describe(selector)}; select it by uuid in ${field}`,
  );
}

export function findSr(
  xapi: Xapi,
  selector: ObjectSelector,
  field = 'destination.sr',
  pool = 'destination',
): Promise<string> {
  return findOne(xapi, 'SR', selector, field, pool);
}

/** VMs carrying a tag, excluding templates, snapshots and dom0 (for jobs that select by tag). */
export async function vmsWithTag(xapi: Xapi, tag: string): Promise<VmRecord[]> {
  const all = await xapi.getAllRecords('VM');
  return [...all.values()].filter(
    (vm) => !vm.is_a_template && !vm.is_a_snapshot && !vm.is_control_domain && vm.tags.includes(tag),
  );
}
