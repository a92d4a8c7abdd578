/**
 * Storage as SM and xapi behave: VHD parent chains with hidden base copies, the chain limit (109),
 * the garbage collector's quiet period and one-pair rounds, operation marks that make conflicting
 * calls wait (or fail past xapi's retry bound), per-SR serialization, thick LVM snapshot cost.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
let pool: SimPool;
let s: TestSession;
type Rec = Record<string, unknown> & { sm_config: Record<string, string>; uuid: string };

beforeAll(async () => {
  pool = await startPool({
    name: 'storage',
    password: 'pw',
    srs: [
      { name_label: 'Ext', sizeBytes: 4096 * MiB, type: 'ext' },
      { name_label: 'Ext2', sizeBytes: 4096 * MiB, type: 'ext' },
      { name_label: 'Lvm', sizeBytes: 4096 * MiB, type: 'lvm' },
      { name_label: 'Dummy', sizeBytes: 4096 * MiB, type: 'dummy' },
    ],
    storage: { gcQuietMs: 60_000, coalesceMs: 100, chainLimit: 5 },
    vms: [{ name_label: 'busy', power_state: 'Running', disks: [{ sizeBytes: 4 * MiB, sr: 'Ext' }] }],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(() => pool?.close());
beforeEach(() => pool.test.storage({ gcQuietMs: 60_000, coalesceMs: 100, opMs: 0, retryMs: 60_000 }));

const sr = async (name: string): Promise<string> =>
  (await s.call<string[]>('SR.get_by_name_label', name))[0]!;
const rec = (vdi: string): Promise<Rec> => s.call<Rec>('VDI.get_record', vdi);
async function newDisk(srName: string, written = 4 * MiB): Promise<string> {
  const vdi = await s.call<string>('VDI.create', {
    SR: await sr(srName),
    virtual_size: String(64 * MiB),
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  });
  pool.test.writeVdi((await rec(vdi)).uuid, 0, Buffer.alloc(written, 7));
  return vdi;
}
/** The uuids from `vdi` up its vhd-parent chain (read again if the GC changed it meanwhile). */
async function chain(vdi: string): Promise<string[]> {
  for (;;) {
    const c = await chainOnce(vdi).catch(() => undefined);
    if (c) return c;
  }
}
async function chainOnce(vdi: string): Promise<string[]> {
  const out: string[] = [];
  let r: Rec | undefined = await rec(vdi);
  while (r) {
    out.push(r.uuid);
    const parent: string | undefined = r.sm_config['vhd-parent'];
    r = parent ? await rec(await s.call<string>('VDI.get_by_uuid', parent)) : undefined;
  }
  return out;
}
const baseCopies = (srRef: string) =>
  pool.test.objects('VDI').filter(([, r]) => r.SR === srRef && r.managed === false);

describe('VHD chains on file SRs', () => {
  it('snapshot and clone insert a hidden, unmanaged base copy under the source and the new leaf', async () => {
    const disk = await newDisk('Ext');
    const hash = pool.test.hashVdi((await rec(disk)).uuid);
    const snap = await s.async('VDI.snapshot', disk, {});
    const [d, sn] = [await rec(disk), await rec(snap)];
    const baseUuid = d.sm_config['vhd-parent']!;
    expect(sn.sm_config['vhd-parent']).toBe(baseUuid);
    const base = await rec(await s.call<string>('VDI.get_by_uuid', baseUuid));
    expect(base).toMatchObject({ name_label: 'base copy', managed: false, read_only: true, sm_config: {} });
    const clone = await s.async('VDI.clone', disk, {});
    expect(await chain(clone)).toEqual([(await rec(clone)).uuid, expect.any(String), baseUuid]);
    expect(await chain(disk)).toHaveLength(3);
    expect(await chain(snap)).toHaveLength(2);
    expect(pool.test.hashVdi((await rec(clone)).uuid)).toBe(hash);
    const baseRef = await s.call<string>('VDI.get_by_uuid', baseUuid);
    expect(await s.failure('VDI.destroy', baseRef)).toEqual(['VDI_NOT_MANAGED', baseRef]);
    // a copy is flat; an SR type without VHD (dummy) gets no chain
    const copy = await s.async('VDI.copy', disk, await sr('Ext2'), 'OpaqueRef:NULL', 'OpaqueRef:NULL');
    expect((await rec(copy)).sm_config['vhd-parent']).toBeUndefined();
    const dummy = await newDisk('Dummy', 0);
    await s.async('VDI.snapshot', dummy, {});
    expect((await rec(dummy)).sm_config['vhd-parent']).toBeUndefined();
  });

  it('refuses a snapshot or clone of a leaf already at the chain limit with SR_BACKEND_FAILURE_109', async () => {
    const disk = await newDisk('Ext');
    for (let i = 0; i < 4; i++) await s.async('VDI.clone', disk, {});
    expect(await chain(disk)).toHaveLength(5);
    const tooLong = ['SR_BACKEND_FAILURE_109', '', 'The snapshot chain is too long', ''];
    await expect(s.async('VDI.snapshot', disk, {})).rejects.toMatchObject({ description: tooLong });
    await expect(s.async('VDI.clone', disk, {})).rejects.toMatchObject({ description: tooLong });
  });
});

describe('garbage collection', () => {
  it('waits its quiet period, then forgets garbage and coalesces one pair per round', async () => {
    const srRef = await sr('Ext2');
    const disk = await newDisk('Ext2');
    const uuid = (await rec(disk)).uuid;
    const hash = pool.test.hashVdi(uuid);
    const snaps: string[] = [];
    for (let i = 0; i < 3; i++) snaps.push(await s.async('VDI.snapshot', disk, {}));
    expect(await chain(disk)).toHaveLength(4);
    pool.test.storage({ gcQuietMs: 300 });
    for (const v of snaps) await s.call('VDI.destroy', v);
    await new Promise((r) => setTimeout(r, 150));
    // quiet period: nothing has changed yet
    expect(await chain(disk)).toHaveLength(4);
    // then a "Garbage Collection" task on the SR, and the chain collapses to the leaf alone
    let sawTask = false;
    const end = Date.now() + 10_000;
    while ((await chain(disk)).length > 1 && Date.now() < end) {
      const tasks = pool.test.objects('task').filter(([, t]) => t.name_label === 'Garbage Collection');
      if (tasks.some(([, t]) => (t.other_config as Record<string, string>).applies_to === srRef))
        sawTask = true;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(sawTask).toBe(true);
    expect(await chain(disk)).toEqual([uuid]);
    expect(baseCopies(srRef)).toEqual([]);
    expect(pool.test.hashVdi(uuid)).toBe(hash);
    expect(pool.test.objects('task')).toEqual([]);
  });

  it('a leaf coalesce shows as VDI op snapshot: other operations wait, past the retry bound OTHER_OPERATION_IN_PROGRESS', async () => {
    const disk = await newDisk('Ext');
    const snap = await s.async('VDI.snapshot', disk, {});
    await s.call('VDI.destroy', snap);
    pool.test.storage({ coalesceMs: 600, retryMs: 100 });
    const settled = pool.test.settleStorage();
    const end = Date.now() + 5000;
    let ops: Record<string, string> = {};
    while (Object.keys(ops).length === 0 && Date.now() < end)
      ops = await s.call<Record<string, string>>('VDI.get_current_operations', disk);
    const [[task, op]] = Object.entries(ops) as [[string, string]];
    expect(op).toBe('snapshot');
    // xapi marks the SR before the VDI, so the SR's vdi_snapshot is what a clone runs into
    const srOps = await s.call<Record<string, string>>('SR.get_current_operations', await sr('Ext'));
    expect(srOps).toEqual({ [task]: 'vdi_snapshot' });
    const err = await s.async('VDI.clone', disk, {}).catch((e: { description: string[] }) => e.description);
    expect(err).toEqual(['OTHER_OPERATION_IN_PROGRESS', 'SR', await sr('Ext'), 'vdi_snapshot', task]);
    const destroy = await s.async('VDI.destroy', disk).catch((e: { description: string[] }) => e.description);
    expect(destroy).toEqual(['OTHER_OPERATION_IN_PROGRESS', 'SR', await sr('Ext'), 'vdi_snapshot', task]);
    // with xapi's own retry the same call just takes longer
    pool.test.storage({ retryMs: 60_000 });
    const t0 = Date.now();
    const clone = await s.async('VDI.clone', disk, {});
    expect(Date.now() - t0).toBeGreaterThan(50);
    await settled;
    expect(await chain(clone)).toHaveLength(2);
  });
});

describe('operations that take time', () => {
  it('VDI create/snapshot/clone/destroy on one SR run one at a time; other SRs are not held up', async () => {
    pool.test.storage({ opMs: 200 });
    const [ext, ext2] = [await sr('Ext'), await sr('Ext2')];
    const args = (srRef: string) => ({
      SR: srRef,
      virtual_size: String(4 * MiB),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    });
    let t0 = Date.now();
    const sameSr = await Promise.all([0, 1, 2].map(() => s.call<string>('VDI.create', args(ext))));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(580);
    t0 = Date.now();
    const pending = s.call<string>('VDI.create', args(ext2));
    await new Promise((r) => setTimeout(r, 50));
    expect(Object.values(await s.call<Record<string, string>>('SR.get_current_operations', ext2))).toEqual([
      'vdi_create',
    ]);
    const other = await Promise.all([pending, s.call<string>('VDI.create', args(ext))]);
    expect(Date.now() - t0).toBeLessThan(400);
    pool.test.storage({ opMs: 0 });
    for (const v of [...sameSr, ...other]) await s.call('VDI.destroy', v);
  });

  it('while the SR is busy a power-state check still fails at once; the VM snapshot waits its turn', async () => {
    pool.test.storage({ opMs: 1000 });
    const ext = await sr('Ext');
    const vm = (await s.call<string[]>('VM.get_by_name_label', 'busy'))[0]!;
    const slow = s.call<string>('VDI.create', {
      SR: ext,
      virtual_size: String(4 * MiB),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    });
    await new Promise((r) => setTimeout(r, 50));
    let t0 = Date.now();
    // VM.clone of a running VM: admission's power-state check comes before any storage operation
    expect(await s.failure('VM.clone', vm, 'c')).toEqual(['VM_BAD_POWER_STATE', vm, 'halted', 'running']);
    expect(Date.now() - t0).toBeLessThan(500);
    t0 = Date.now();
    const snap = await s.async('VM.snapshot', vm, 'while busy');
    // it waited for the create (xapi's own retry, no error) and then held the SR for its own disk
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    pool.test.storage({ opMs: 0 });
    await s.call('VDI.destroy', await slow);
    expect(await s.call<boolean>('VM.get_is_a_snapshot', snap)).toBe(true);
  });
});

describe('thick LVM', () => {
  it('a snapshot costs the allocated size again, a clone also a full-size leaf; the GC gives it back', async () => {
    const lvm = await sr('Lvm');
    const used = async () => Number(await s.call<string>('SR.get_physical_utilisation', lvm));
    const disk = await newDisk('Lvm', 8 * MiB);
    const before = await used();
    const snap = await s.async('VDI.snapshot', disk, {});
    expect((await used()) - before).toBe(8 * MiB);
    const clone = await s.async('VDI.clone', disk, {});
    expect((await used()) - before).toBe(8 * MiB + 8 * MiB + 64 * MiB);
    for (const v of [snap, clone]) await s.call('VDI.destroy', v);
    await pool.test.settleStorage();
    expect(await used()).toBe(before);
    expect(baseCopies(lvm)).toEqual([]);
    // on ext the same snapshot costs nothing until written
    const e = await newDisk('Ext2', 8 * MiB);
    const extUsed = Number(await s.call<string>('SR.get_physical_utilisation', await sr('Ext2')));
    await s.async('VDI.snapshot', e, {});
    expect(Number(await s.call<string>('SR.get_physical_utilisation', await sr('Ext2')))).toBe(extUsed);
  });
});
