/** VM.start's resource checks (xapi_vm_helpers assert_can_boot_here, xapi_vbd_helpers), in order. */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import { NULL_REF } from '../wire/values.js';
import { self } from './implicit.js';
import { p, type Registry } from './registry.js';

const memoryOf = (rec: Record<string, unknown>): number =>
  Number(rec.memory_dynamic_max ?? 0) + Number(rec.memory_overhead ?? 0);

/** Free memory of a host: its RAM less what running guests (not dom0) take. */
export function hostFreeMemory(pool: PoolState, hostRef: string): number {
  let used = 0;
  for (const [, vm] of pool.db.all('VM')) {
    if (vm.resident_on !== hostRef || vm.is_control_domain === true || vm.power_state === 'Halted') continue;
    used += memoryOf(vm);
  }
  return Math.max(0, pool.hostMemoryBytes - used);
}

/**
 * HOST_NOT_ENOUGH_FREE_MEMORY [needed, available] (bytes, as decimal strings); then, for each of
 * the VM's disks, VDI_IN_USE [vdi] when a non-sharable VDI is attached through another VBD.
 */
export function assertCanStart(pool: PoolState, vm: string, hostRef: string): void {
  const rec = pool.db.get('VM', vm);
  const needed = memoryOf(rec);
  const available = hostFreeMemory(pool, hostRef);
  if (needed > available)
    throw new XapiError('HOST_NOT_ENOUGH_FREE_MEMORY', [String(needed), String(available)]);
  for (const v of rec.VBDs as string[]) {
    const vbd = pool.db.get('VBD', v);
    const vdi = vbd.VDI as string;
    if (vbd.empty === true || vdi === NULL_REF) continue;
    const vdiRec = pool.db.get('VDI', vdi);
    if (vdiRec.sharable === true) continue;
    const elsewhere = (vdiRec.VBDs as string[]).some(
      (o) => o !== v && pool.db.find('VBD', o)?.currently_attached === true,
    );
    if (elsewhere) throw new XapiError('VDI_IN_USE', [vdi]);
  }
}

export function registerHostMemory(reg: Registry): void {
  reg.add({
    name: 'host.compute_free_memory',
    params: [p('host', 'ref')],
    handler: ({ pool }, [h]) => hostFreeMemory(pool, self(pool, 'host', h)),
  });
}
