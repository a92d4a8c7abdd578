/** VM.start as xapi does it: admission, free memory, disks attached elsewhere; the guest agent's
 *  report (VM_guest_metrics), guest-written vm-data keys, boots that hang or crash; shutdowns. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
let pool: SimPool;
let s: TestSession;

beforeAll(async () => {
  pool = await startPool({
    name: 'boot',
    password: 'pw',
    hostMemoryBytes: 6 * GiB,
    srs: [{ name_label: 'Local', sizeBytes: 64 * MiB }],
    networks: [{ name_label: 'net' }],
    guests: [
      { nameIncludes: 'tools', delayMs: 700, xenstore: { 'vm-data/xcr-drill': 'ok', 'data/other': 'x' } },
      { nameIncludes: 'silent', outcome: 'silent' },
      { nameIncludes: 'crash', outcome: 'crash', delayMs: 50 },
    ],
    vms: [
      { name_label: 'tools', memoryBytes: 2 * GiB, disks: [{ sizeBytes: 4 * MiB }] },
      { name_label: 'silent', memoryBytes: 1 * GiB },
      { name_label: 'crash', memoryBytes: 1 * GiB },
      { name_label: 'big', memoryBytes: 8 * GiB },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(async () => {
  await pool?.close();
});

const vmRef = async (name: string) => (await s.call<string[]>('VM.get_by_name_label', name))[0]!;
const field = <T>(vm: string, f: string) => s.call<T>(`VM.get_${f}`, vm);
async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('VM.start', () => {
  it('boots a halted VM; the guest agent reports after its delay; vm-data keys reach xenstore_data', async () => {
    const vm = await vmRef('tools');
    await s.async('VM.start', vm, false, false);
    expect(await field(vm, 'power_state')).toBe('Running');
    expect(await field(vm, 'guest_metrics')).toBe('OpaqueRef:NULL');
    const gm = await until(
      () => field<string>(vm, 'guest_metrics'),
      (g) => g !== 'OpaqueRef:NULL',
    );
    const rec = await s.call<Record<string, unknown>>('VM_guest_metrics.get_record', gm);
    expect(rec.PV_drivers_detected).toBe(true);
    expect(rec.os_version).toMatchObject({ distro: 'debian' });
    expect(rec.PV_drivers_version).toMatchObject({ major: '9' });
    const xs = await field<Record<string, string>>(vm, 'xenstore_data');
    expect(xs['vm-data/xcr-drill']).toBe('ok');
    // Only vm-data/ (and FIST/) keys are copied back from the guest's xenstore.
    expect(xs['data/other']).toBeUndefined();
  });

  it('refuses a running VM with VM_BAD_POWER_STATE [vm, expected, actual]', async () => {
    const vm = await vmRef('tools');
    expect(await s.failure('VM.start', vm, false, false)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'halted',
      'running',
    ]);
  });

  it('needs the memory free: HOST_NOT_ENOUGH_FREE_MEMORY [needed, available]', async () => {
    const vm = await vmRef('big');
    const host = (await s.call<string[]>('host.get_all'))[0]!;
    const free = await s.call<string>('host.compute_free_memory', host);
    expect(Number(free)).toBe(4 * GiB);
    expect(await s.failure('VM.start', vm, false, false)).toEqual([
      'HOST_NOT_ENOUGH_FREE_MEMORY',
      String(8 * GiB),
      String(4 * GiB),
    ]);
  });

  it('refuses a VM whose disk is attached to another running VM: VDI_IN_USE [vdi]', async () => {
    const vm = await vmRef('tools');
    const vbd = (await field<string[]>(vm, 'VBDs'))[0]!;
    const vdi = await s.call<string>('VBD.get_VDI', vbd);
    const other = await s.async('VM.clone', await vmRef('big'), 'borrower');
    await s.call('VM.set_memory_limits', other, String(MiB), String(MiB), String(MiB), String(MiB));
    await s.async('VBD.create', {
      VM: other,
      VDI: vdi,
      userdevice: '0',
      bootable: false,
      mode: 'RW',
      type: 'Disk',
      empty: false,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
    expect(await s.failure('VM.start', other, false, false)).toEqual(['VDI_IN_USE', vdi]);
    await s.async('VM.destroy', other);
  });

  it('honours a start block: OPERATION_BLOCKED [vm, reason]', async () => {
    const vm = await vmRef('silent');
    await s.call('VM.set_blocked_operations', vm, { start: 'drill only' });
    expect(await s.failure('VM.start', vm, false, false)).toEqual(['OPERATION_BLOCKED', vm, 'drill only']);
    await s.call('VM.set_blocked_operations', vm, {});
  });

  it('a guest that never reports tools keeps guest_metrics NULL while running', async () => {
    const vm = await vmRef('silent');
    await s.async('VM.start', vm, false, false);
    await new Promise((r) => setTimeout(r, 400));
    expect(await field(vm, 'power_state')).toBe('Running');
    expect(await field(vm, 'guest_metrics')).toBe('OpaqueRef:NULL');
    // without a guest agent there is no clean shutdown
    expect(await s.failure('VM.clean_shutdown', vm)).toEqual(['VM_LACKS_FEATURE', vm]);
    await s.async('VM.hard_shutdown', vm);
    expect(await field(vm, 'power_state')).toBe('Halted');
  });

  it('a crashing guest with actions_after_crash=destroy ends Halted, its disks detached', async () => {
    const vm = await vmRef('crash');
    await s.call('VM.set_actions_after_crash', vm, 'destroy');
    await s.async('VM.start', vm, false, false);
    const ps = await until(
      () => field<string>(vm, 'power_state'),
      (p) => p === 'Halted',
    );
    expect(ps).toBe('Halted');
    expect(await field(vm, 'guest_metrics')).toBe('OpaqueRef:NULL');
  });
});

describe('shutdowns', () => {
  it('clean_shutdown of a halted VM: VM_BAD_POWER_STATE; of a running one: Halted, guest metrics gone', async () => {
    const vm = await vmRef('tools');
    const gm = await field<string>(vm, 'guest_metrics');
    await s.async('VM.clean_shutdown', vm);
    expect(await field(vm, 'power_state')).toBe('Halted');
    expect(await field(vm, 'guest_metrics')).toBe('OpaqueRef:NULL');
    expect(await s.failure('VM_guest_metrics.get_record', gm)).toEqual([
      'HANDLE_INVALID',
      'VM_guest_metrics',
      gm,
    ]);
    expect(await s.failure('VM.clean_shutdown', vm)).toEqual(['VM_BAD_POWER_STATE', vm, 'running', 'halted']);
    expect(await s.failure('VM.hard_shutdown', vm)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'paused, suspended, running',
      'halted',
    ]);
  });
});
