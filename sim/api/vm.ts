/** VM messages: admission checks (in XAPI's order), snapshot/clone/copy, power operations, destroy. */
import { randomBytes, randomUUID } from 'node:crypto';
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import { EPOCH, NULL_REF, type XRecord, type XValue } from '../wire/values.js';
import { randomMac } from './core.js';
import { genericBiosStrings } from './firmware.js';
import { bootGuest, dropGuestMetrics } from './guest-boot.js';
import { constructorFields, self } from './implicit.js';
import { p, type Registry } from './registry.js';
import { cloneVdi, copyVdi, destroyVdiData, snapshotVdi, withVmDiskOps } from './vdi.js';
import { checkVmOperation, type PowerState } from './vm-admission.js';
import { assertCanStart } from './vm-start.js';
import { copyVtpms, destroyVtpm } from './vtpm.js';

/** A fresh VM-Generation ID ("%Ld:%Ld" of two random int64); "" (no genid) stays "". */
function freshGenerationId(current: XValue | undefined): string {
  if (current === '') return '';
  const b = randomBytes(16);
  return `${b.readBigInt64BE(0)}:${b.readBigInt64BE(8)}`;
}

type DiskOp = 'snapshot' | 'clone' | 'copy';

/** xapi_vm_clone.clone: disks first, then the VM record, VBDs and VIFs; undo on failure. */
function cloneVm(
  pool: PoolState,
  vm: string,
  newName: string,
  op: DiskOp,
  sr: string,
  ignore: string[],
): string {
  const src = pool.db.get('VM', vm);
  const isSnap = op === 'snapshot';
  const vbds = (src.VBDs as string[]).filter((v) => {
    const vdi = pool.db.get('VBD', v).VDI as string;
    return !(isSnap && ignore.includes(vdi));
  });
  const created: string[] = [];
  const newVdis = new Map<string, string>();
  try {
    for (const v of vbds) {
      const vbd = pool.db.get('VBD', v);
      const vdi = vbd.VDI as string;
      if (vbd.type !== 'Disk' || vbd.empty === true || vdi === NULL_REF) continue;
      let nv: string;
      if (op === 'snapshot') nv = snapshotVdi(pool, vdi);
      else if (op === 'clone') nv = cloneVdi(pool, vdi);
      else nv = copyVdi(pool, vdi, sr === NULL_REF ? (pool.db.get('VDI', vdi).SR as string) : sr);
      created.push(nv);
      newVdis.set(v, nv);
    }
  } catch (e) {
    for (const v of created) destroyVdiData(pool, v);
    throw e;
  }
  const otherConfig = { ...(src.other_config as XRecord) };
  if (!isSnap) otherConfig.mac_seed = randomUUID();
  delete otherConfig.default_template;
  const rec: XRecord = {};
  for (const [k, v] of Object.entries(src)) rec[k] = v;
  Object.assign(rec, {
    uuid: randomUUID(),
    name_label: newName,
    power_state: isSnap ? 'Halted' : src.power_state === 'Suspended' ? 'Suspended' : 'Halted',
    allowed_operations: [],
    blocked_operations: {},
    current_operations: {},
    is_a_template: isSnap || src.is_a_template === true,
    is_default_template: false,
    is_a_snapshot: isSnap,
    snapshot_of: isSnap ? vm : NULL_REF,
    snapshot_time: isSnap ? new Date() : EPOCH,
    snapshot_info: isSnap
      ? { 'disk-snapshot-type': 'crash_consistent', 'power-state-at-snapshot': String(src.power_state) }
      : {},
    parent: isSnap ? src.parent : NULL_REF,
    resident_on: NULL_REF,
    other_config: otherConfig,
    tags: [...(src.tags as string[])],
    VBDs: [],
    VIFs: [],
    snapshots: [],
    children: [],
    domid: -1,
    suspend_VDI: NULL_REF,
    VTPMs: [],
    // xapi_vm_clone: unconditional for snapshot, checkpoint, clone and copy.
    generation_id: freshGenerationId(src.generation_id),
  });
  const ref = pool.db.create('VM', rec);
  copyVtpms(pool, vm, ref);
  if (isSnap) pool.db.set('VM', vm, 'parent', ref);
  for (const v of vbds) {
    const vbd = pool.db.get('VBD', v);
    const nv = newVdis.get(v) ?? (vbd.VDI as string);
    const oc = { ...(vbd.other_config as XRecord) };
    if (vbd.type === 'Disk' && !('owner' in oc)) oc.owner = '';
    pool.db.create('VBD', {
      ...Object.fromEntries(Object.entries(vbd)),
      uuid: randomUUID(),
      VM: ref,
      VDI: nv,
      other_config: oc,
      currently_attached: false,
      current_operations: {},
    });
  }
  for (const v of src.VIFs as string[]) {
    const vif = pool.db.get('VIF', v);
    pool.db.create('VIF', {
      ...Object.fromEntries(Object.entries(vif)),
      uuid: randomUUID(),
      VM: ref,
      MAC: isSnap ? (vif.MAC as string) : randomMac(),
      currently_attached: false,
    });
  }
  return ref;
}

/** A snapshot made at population time (no task, no storage timing): pools with history for benchmarks. */
export function populateSnapshot(pool: PoolState, vm: string, name: string): string {
  return cloneVm(pool, vm, name, 'snapshot', NULL_REF, []);
}

/** What VM.start checks and fills besides admission (xapi_xenops, message_forwarding). */
function prepareStart(pool: PoolState, vm: string): void {
  const rec = pool.db.get('VM', vm);
  const firmware = (rec.HVM_boot_params as XRecord).firmware ?? 'bios';
  if (firmware !== 'bios' && firmware !== 'uefi') {
    throw new XapiError('INVALID_VALUE', ["HVM-boot-params['firmware']", String(firmware)]);
  }
  if (firmware === 'bios' && (rec.VTPMs as string[]).length > 0) {
    throw new XapiError('NOT_IMPLEMENTED', ['Booting BIOS VM with VTPMs attached']);
  }
  if (Object.keys(rec.bios_strings as XRecord).length === 0) {
    pool.db.set('VM', vm, 'bios_strings', genericBiosStrings());
  }
}

function setPower(pool: PoolState, vm: string, state: PowerState, hostIndex: number): void {
  const running = state === 'Running';
  pool.db.set('VM', vm, 'power_state', state);
  pool.db.set('VM', vm, 'resident_on', running ? pool.hosts[hostIndex]!.ref : NULL_REF);
  pool.db.set('VM', vm, 'domid', running ? 1 + Math.floor(Math.random() * 1000) : -1);
  for (const v of pool.db.get('VM', vm).VBDs as string[])
    pool.db.set('VBD', v, 'currently_attached', running);
  for (const v of pool.db.get('VM', vm).VIFs as string[])
    pool.db.set('VIF', v, 'currently_attached', running);
  if (running) bootGuest(pool, vm);
  else dropGuestMetrics(pool, vm);
}

/** VM.start / VM.start_on on a host: admission, firmware, resources, then the domain boots. */
function start(pool: PoolState, vm: string, hostIndex: number): void {
  checkVmOperation(pool, vm, 'start');
  prepareStart(pool, vm);
  assertCanStart(pool, vm, pool.hosts[hostIndex]!.ref);
  setPower(pool, vm, 'Running', hostIndex);
}

export function registerVm(reg: Registry): void {
  reg.add({
    name: 'VM.snapshot',
    params: [p('vm', 'ref'), p('new_name', 'string'), p('ignore_vdis', 'refs', [])],
    async: true,
    handler: ({ pool, task }, [vm, name, ignore]) => {
      const ref = self(pool, 'VM', vm);
      checkVmOperation(pool, ref, 'snapshot');
      return withVmDiskOps(pool, task, ref, 'snapshot', () =>
        cloneVm(pool, ref, String(name), 'snapshot', NULL_REF, ignore as string[]),
      );
    },
  });
  reg.add({
    name: 'VM.clone',
    params: [p('vm', 'ref'), p('new_name', 'string')],
    async: true,
    handler: ({ pool, task }, [vm, name]) => {
      const ref = self(pool, 'VM', vm);
      checkVmOperation(pool, ref, 'clone');
      return withVmDiskOps(pool, task, ref, 'clone', () =>
        cloneVm(pool, ref, String(name), 'clone', NULL_REF, []),
      );
    },
  });
  reg.add({
    name: 'VM.copy',
    params: [p('vm', 'ref'), p('new_name', 'string'), p('sr', 'ref')],
    async: true,
    handler: ({ pool, task }, [vm, name, sr]) => {
      const ref = self(pool, 'VM', vm);
      if (sr !== NULL_REF) self(pool, 'SR', sr);
      checkVmOperation(pool, ref, 'copy');
      return withVmDiskOps(pool, task, ref, 'copy', () =>
        cloneVm(pool, ref, String(name), 'copy', String(sr), []),
      );
    },
  });
  reg.add({
    name: 'VM.destroy',
    params: [p('self', 'ref')],
    async: true,
    handler: ({ pool }, [vm]) => {
      const ref = self(pool, 'VM', vm);
      const rec = pool.db.get('VM', ref);
      if (rec.is_default_template === true) throw new XapiError('VM_CANNOT_DELETE_DEFAULT_TEMPLATE', [ref]);
      checkVmOperation(pool, ref, 'destroy');
      for (const v of [...(rec.VBDs as string[])]) pool.db.destroy('VBD', v);
      for (const v of [...(rec.VIFs as string[])]) pool.db.destroy('VIF', v);
      for (const v of [...(rec.VTPMs as string[])]) destroyVtpm(pool, v);
      pool.db.destroy('VM', ref);
      return undefined;
    },
  });
  reg.add({
    name: 'VM.create',
    params: [p('args', 'record')],
    async: true,
    handler: ({ pool }, [args]) => {
      // xapi_vm.ml's create takes blocked_operations in the record and stores [] (as it drops
      // bios_strings): a client must call VM.set_blocked_operations afterwards.
      const rec = constructorFields('VM', args as XRecord);
      return pool.db.create('VM', { ...rec, blocked_operations: {}, power_state: 'Halted' });
    },
  });
  const power = (name: string, op: string, params: ReturnType<typeof p>[], to: PowerState): void =>
    reg.add({
      name: `VM.${name}`,
      params: [p('vm', 'ref'), ...params],
      async: true,
      handler: ({ pool, hostIndex }, [vm]) => {
        const ref = self(pool, 'VM', vm);
        if (op === 'start') start(pool, ref, hostIndex);
        else {
          checkVmOperation(pool, ref, op);
          // xapi_vm_lifecycle: a clean shutdown needs the guest's cooperation (its agent reported).
          if (name === 'clean_shutdown' && pool.db.get('VM', ref).guest_metrics === NULL_REF)
            throw new XapiError('VM_LACKS_FEATURE', [ref]);
          setPower(pool, ref, to, hostIndex);
        }
        return undefined;
      },
    });
  power('start', 'start', [p('start_paused', 'bool'), p('force', 'bool')], 'Running');
  power('clean_shutdown', 'clean_shutdown', [], 'Halted');
  power('hard_shutdown', 'hard_shutdown', [], 'Halted');
  power('shutdown', 'clean_shutdown', [], 'Halted');
  reg.add({
    name: 'VM.start_on',
    params: [p('vm', 'ref'), p('host', 'ref'), p('start_paused', 'bool'), p('force', 'bool')],
    async: true,
    handler: ({ pool }, [vm, host]) => {
      const ref = self(pool, 'VM', vm);
      const h = self(pool, 'host', host);
      checkVmOperation(pool, ref, 'start_on');
      start(
        pool,
        ref,
        Math.max(
          0,
          pool.hosts.findIndex((x) => x.ref === h),
        ),
      );
      return undefined;
    },
  });
  reg.add({
    name: 'VM.set_memory_limits',
    params: [
      p('self', 'ref'),
      p('static_min', 'int'),
      p('static_max', 'int'),
      p('dynamic_min', 'int'),
      p('dynamic_max', 'int'),
    ],
    handler: ({ pool }, [vm, smin, smax, dmin, dmax]) => {
      const ref = self(pool, 'VM', vm);
      const set = (f: string, v: XValue | undefined): void => pool.db.set('VM', ref, f, v!);
      set('memory_static_min', smin);
      set('memory_static_max', smax);
      set('memory_dynamic_min', dmin);
      set('memory_dynamic_max', dmax);
      return undefined;
    },
  });
  for (const f of [
    'memory_static_max',
    'memory_dynamic_max',
    'memory_dynamic_min',
    'memory_static_min',
    'VCPUs_max',
    'VCPUs_at_startup',
  ]) {
    reg.add({
      name: `VM.set_${f}`,
      params: [p('self', 'ref'), p('value', 'int')],
      handler: ({ pool }, [vm, v]) => {
        pool.db.set('VM', self(pool, 'VM', vm), f, v!);
        return undefined;
      },
    });
  }
  reg.add({
    name: 'VM.get_allowed_VBD_devices',
    params: [p('vm', 'ref')],
    handler: ({ pool }, [vm]) => {
      const used = new Set(
        (pool.db.get('VM', self(pool, 'VM', vm)).VBDs as string[]).map(
          (v) => pool.db.get('VBD', v).userdevice,
        ),
      );
      return Array.from({ length: 16 }, (_, i) => String(i)).filter((d) => !used.has(d));
    },
  });
}
