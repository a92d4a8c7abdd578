/**
 * The client against the simulator over real sockets: every call the product uses, error paths,
 * session expiry, master switch, retries — for both transports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, type XapiOptions } from '../../../functions/xapi/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';

let pool: SimPool;
const opts = (extra: Partial<XapiOptions> = {}): XapiOptions => ({
  url: pool.url,
  username: pool.username,
  password: pool.password,
  allowPlainHttp: true,
  retry: { attempts: 5, delayMs: 5 },
  ...extra,
});

function vmRecord(name: string): Record<string, unknown> {
  return {
    name_label: name,
    name_description: 'xcr test',
    user_version: 1,
    is_a_template: false,
    affinity: 'OpaqueRef:NULL',
    memory_static_max: 2 ** 31,
    memory_dynamic_max: 2 ** 31,
    memory_dynamic_min: 2 ** 31,
    memory_static_min: 2 ** 30,
    VCPUs_params: {},
    VCPUs_max: 2,
    VCPUs_at_startup: 2,
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: { order: 'cd' },
    platform: {},
    PCI_bus: '',
    other_config: {},
    recommendations: '',
  };
}

beforeAll(async () => {
  pool = await startPool({
    name: 'calls',
    hosts: 2,
    srs: [{ name_label: 'sr0', sizeBytes: 2 ** 36, shared: true }],
    networks: [{ name_label: 'net0' }],
    vms: [
      { name_label: 'src', disks: [{ sizeBytes: 8 << 20, data: [{ offset: 0, length: 1 << 20, byte: 9 }] }] },
    ],
  });
});
afterAll(async () => {
  await pool.close();
});

for (const transport of ['xmlrpc', 'jsonrpc'] as const) {
  describe(`product calls over ${transport}`, () => {
    let x: Xapi;
    beforeAll(async () => {
      x = await Xapi.connect(opts({ transport }));
    });
    afterAll(async () => {
      await x.logout();
    });

    it('reads typed records', async () => {
      const pools = await x.getAllRecords('pool');
      expect(pools.size).toBe(1);
      const [, p] = [...pools][0]!;
      const master = await x.getRecord('host', p.master);
      expect(master.address).toBe(pool.hosts[0]!.address);
      const vms = [...(await x.getAllRecords('VM')).values()].filter((v) => !v.is_control_domain);
      const src = vms.find((v) => v.name_label === 'src')!;
      expect(typeof src.memory_static_max).toBe('number');
      expect(src.snapshot_time).toBeInstanceOf(Date);
      expect(await x.getByUuid('VM', src.uuid)).toMatch(/^OpaqueRef:/);
      const vdis = await x.getAllRecords('VDI');
      const disk = [...vdis.values()].find((v) => v.virtual_size === 8 << 20);
      expect(disk).toBeDefined();
      const sr = await x.getRecord('SR', disk!.SR);
      expect(typeof sr.physical_size).toBe('number');
      expect(sr.name_label).toBe('sr0');
    });

    it('snapshots via callAsync, creates and destroys VMs, VDIs, VBDs, VIFs', async () => {
      const vm = await x.getByUuid(
        'VM',
        [...(await x.getAllRecords('VM')).values()].find((v) => v.name_label === 'src')!.uuid,
      );
      const snap = await x.callAsync<string>('VM.snapshot', vm, `snap-${transport}`);
      const snapRec = await x.getRecord('VM', snap);
      expect(snapRec.is_a_snapshot).toBe(true);
      expect(snapRec.snapshot_of).toBe(vm);
      expect(pool.test.objects('task')).toHaveLength(0);

      const srRef = [...(await x.getAllRecords('SR')).keys()][0]!;
      const vdi = await x.call<string>('VDI.create', {
        SR: srRef,
        virtual_size: 2 ** 33, // 8 GiB: above 2^31, must travel as a string
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: { 'xcr:role': 'test' },
        name_label: 'created',
      });
      expect((await x.getRecord('VDI', vdi)).virtual_size).toBe(2 ** 33);
      const clone = await x.callAsync<string>('VDI.clone', vdi);
      const newVm = await x.call<string>('VM.create', vmRecord(`replica-${transport}`));
      const vbd = await x.call<string>('VBD.create', {
        VM: newVm,
        VDI: clone,
        userdevice: '0',
        bootable: true,
        mode: 'RW',
        type: 'Disk',
        empty: false,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
      const net = [...(await x.getAllRecords('network')).entries()].find(
        ([, n]) => n.name_label === 'net0',
      )![0];
      const vif = await x.call<string>('VIF.create', {
        device: '0',
        network: net,
        VM: newVm,
        MAC: '',
        MTU: 1500,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
      const rec = await x.getRecord('VM', newVm);
      expect(rec.VBDs).toEqual([vbd]);
      expect(rec.VIFs).toEqual([vif]);
      expect((await x.getRecord('VIF', vif)).MTU).toBe(1500);
      expect((await x.getRecord('VBD', vbd)).VDI).toBe(clone);

      await x.destroy('VIF', vif);
      await x.destroy('VBD', vbd);
      await x.destroy('VM', newVm);
      await x.destroy('VM', newVm); // idempotent
      await x.destroy('VDI', clone);
      await x.destroy('VDI', vdi);
      await x.destroy('VDI', vdi);
      const snapVdis = await Promise.all(snapRec.VBDs.map(async (b) => (await x.getRecord('VBD', b)).VDI));
      await x.destroy('VM', snap);
      for (const v of snapVdis) await x.destroy('VDI', v);
      expect(pool.test.objects('VM').some(([r]) => r === newVm || r === snap)).toBe(false);
      expect(pool.test.objects('VDI').some(([r]) => r === vdi || r === clone)).toBe(false);
    });

    it('edits other_config, tags and blocked_operations; setMapEntry replaces', async () => {
      const vm = await x.call<string>('VM.create', vmRecord(`maps-${transport}`));
      await x.call('VM.add_to_other_config', vm, 'xcr:job', 'j1');
      await expect(x.call('VM.add_to_other_config', vm, 'xcr:job', 'j2')).rejects.toMatchObject({
        name: 'XapiError',
        code: 'MAP_DUPLICATE_KEY',
        params: ['VM', 'other_config', vm, 'xcr:job'],
        method: 'VM.add_to_other_config',
      });
      await x.setMapEntry('VM', vm, 'other_config', 'xcr:job', 'j2');
      await x.setMapEntry('VM', vm, 'other_config', 'xcr:new', 'n');
      await x.call('VM.remove_from_other_config', vm, 'xcr:new');
      await x.call('VM.add_tags', vm, 'xcr-replica');
      await x.setMapEntry('VM', vm, 'blocked_operations', 'start', 'clone it to use it');
      const rec = await x.getRecord('VM', vm);
      expect(rec.other_config).toEqual({ 'xcr:job': 'j2' });
      expect(rec.tags).toEqual(['xcr-replica']);
      expect(rec.blocked_operations).toEqual({ start: 'clone it to use it' });
      await expect(x.callAsync('VM.start', vm, false, false)).rejects.toMatchObject({
        code: 'OPERATION_BLOCKED',
        params: [vm, 'clone it to use it'],
        method: 'VM.start',
      });
      await x.destroy('VM', vm);
    });

    it('reports HANDLE_INVALID with class and ref', async () => {
      await expect(
        x.getRecord('VDI', 'OpaqueRef:00000000-0000-0000-0000-000000000000'),
      ).rejects.toMatchObject({
        name: 'XapiError',
        code: 'HANDLE_INVALID',
        params: ['VDI', 'OpaqueRef:00000000-0000-0000-0000-000000000000'],
      });
      await expect(x.getByUuid('VM', 'no-such-uuid')).rejects.toMatchObject({ code: 'UUID_INVALID' });
    });
  });
}

describe('sessions and retries against the simulator', () => {
  it('survives session expiry mid-run', async () => {
    const x = await Xapi.connect(opts());
    try {
      await x.getAllRecords('VM');
      pool.test.expireSessions();
      expect((await x.getAllRecords('VM')).size).toBeGreaterThan(0);
      pool.test.expireSessions();
      const vm = [...(await x.getAllRecords('VM')).keys()][0]!;
      pool.test.expireSessions();
      expect(await x.callAsync('VM.snapshot', vm, 'after-expiry')).toMatch(/^OpaqueRef:/);
    } finally {
      await x.logout();
    }
  });

  it('retries VDI_IN_USE on destroy', async () => {
    const x = await Xapi.connect(opts());
    try {
      const sr = [...(await x.getAllRecords('SR')).keys()][0]!;
      const vdi = await x.call<string>('VDI.create', {
        SR: sr,
        virtual_size: 2 << 20,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      pool.test.injectFault({ method: 'VDI.destroy', count: 2, error: ['VDI_IN_USE', vdi, 'destroy'] });
      await x.destroy('VDI', vdi);
      expect(pool.test.objects('VDI').some(([r]) => r === vdi)).toBe(false);
      expect(pool.test.calls().filter((c) => c === 'VDI.destroy').length).toBeGreaterThanOrEqual(3);
    } finally {
      pool.test.clearFaults();
      await x.logout();
    }
  });

  it('retries TOO_MANY_PENDING_TASKS on Async calls', async () => {
    const x = await Xapi.connect(opts());
    try {
      const vm = [...(await x.getAllRecords('VM')).entries()].find(([, v]) => v.name_label === 'src')![0];
      pool.test.injectFault({ method: 'VM.snapshot', count: 2, error: ['TOO_MANY_PENDING_TASKS'] });
      expect(await x.callAsync('VM.snapshot', vm, 'busy')).toMatch(/^OpaqueRef:/);
      expect(pool.test.objects('task')).toHaveLength(0);
    } finally {
      pool.test.clearFaults();
      await x.logout();
    }
  });

  it('logs in through a member and follows a master switch', async () => {
    const x = await Xapi.connect(opts({ url: pool.hosts[1]!.url }));
    try {
      expect(x.url).toBe(pool.hosts[0]!.url);
      pool.test.switchMaster(1);
      expect((await x.getAllRecords('host')).size).toBe(2);
      expect(x.url).toBe(pool.hosts[1]!.url);
      const vm = [...(await x.getAllRecords('VM')).entries()].find(([, v]) => v.name_label === 'src')![0];
      expect(await x.callAsync('VM.snapshot', vm, 'on-new-master')).toMatch(/^OpaqueRef:/);
    } finally {
      pool.test.switchMaster(0);
      await x.logout();
    }
  });
});
