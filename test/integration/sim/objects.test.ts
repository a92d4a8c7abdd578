/** VM/VDI semantics, snapshots and clones, tasks and event.from, as docs/xapi.md describes them. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession, XapiFailure } from './client.js';

const MiB = 1024 * 1024;
let pool: SimPool;
let s: TestSession;

beforeAll(async () => {
  pool = await startPool({
    name: 'obj',
    password: 'pw',
    srs: [
      { name_label: 'Local', sizeBytes: 512 * MiB },
      { name_label: 'Tiny', sizeBytes: 4 * MiB },
    ],
    networks: [{ name_label: 'net0' }],
    vms: [
      {
        name_label: 'web',
        power_state: 'Running',
        tags: ['prod'],
        other_config: { app: 'web' },
        disks: [
          { sizeBytes: 16 * MiB, data: [{ offset: 0, length: 3 * MiB, seed: 1 }] },
          { sizeBytes: 8 * MiB, userdevice: '3', data: [{ offset: 0, length: MiB, byte: 9 }] },
        ],
        vifs: [{ network: 'net0' }],
      },
      { name_label: 'halted', disks: [{ sizeBytes: 4 * MiB }] },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(async () => {
  await pool?.close();
});

type Rec = Record<string, unknown>;
const vmRef = async (name: string): Promise<string> =>
  (await s.call<string[]>('VM.get_by_name_label', name))[0]!;
const vdisOf = async (vm: string): Promise<string[]> => {
  const out: string[] = [];
  for (const vbd of await s.call<string[]>('VM.get_VBDs', vm))
    out.push(await s.call<string>('VBD.get_VDI', vbd));
  return out;
};

describe('VM.snapshot', () => {
  it('makes a halted template snapshot with snapshot VDIs and re-pointed VBDs', async () => {
    const web = await vmRef('web');
    const before = Date.now() - 2000;
    const snap = await s.async('VM.snapshot', web, 'snap-1', []);
    const rec = await s.call<Rec>('VM.get_record', snap);
    expect(rec).toMatchObject({
      name_label: 'snap-1',
      is_a_snapshot: true,
      is_a_template: true,
      snapshot_of: web,
      power_state: 'Halted',
      tags: ['prod'],
      blocked_operations: {},
    });
    expect((rec.snapshot_info as Rec)['power-state-at-snapshot']).toBe('Running');
    expect((rec.snapshot_time as Date).getTime()).toBeGreaterThan(before);
    expect((rec.other_config as Rec).app).toBe('web');
    expect(await s.call('VM.get_snapshots', web)).toContain(snap);
    const srcVdis = await vdisOf(web);
    const snapVdis = await vdisOf(snap);
    expect(snapVdis).toHaveLength(2);
    for (const [i, v] of snapVdis.entries()) {
      const vr = await s.call<Rec>('VDI.get_record', v);
      expect(vr).toMatchObject({ is_a_snapshot: true, snapshot_of: srcVdis[i] });
      const vu = vr.uuid as string;
      const su = await s.call<string>('VDI.get_uuid', srcVdis[i]);
      expect(pool.test.hashVdi(vu)).toBe(pool.test.hashVdi(su));
    }
    const vbd = (await s.call<string[]>('VM.get_VBDs', snap))[1]!;
    expect(await s.call<Rec>('VBD.get_record', vbd)).toMatchObject({
      userdevice: '3',
      VM: snap,
      currently_attached: false,
    });
    expect(((await s.call<Rec>('VBD.get_record', vbd)).other_config as Rec).owner).toBe('');
    // the running VM keeps writing; the snapshot does not change
    const su = await s.call<string>('VDI.get_uuid', srcVdis[0]);
    const snapUuid = await s.call<string>('VDI.get_uuid', snapVdis[0]);
    const h = pool.test.hashVdi(snapUuid);
    pool.test.writeVdi(su, 5 * MiB, Buffer.from('new data'));
    expect(pool.test.hashVdi(snapUuid)).toBe(h);
    expect(pool.test.hashVdi(su)).not.toBe(h);
    // ignore_vdis skips a disk
    const snap2 = await s.async('VM.snapshot', web, 'snap-2', [srcVdis[1]]);
    expect(await vdisOf(snap2)).toHaveLength(1);
    expect(await s.call('VM.get_parent', web)).toBe(snap2);
    expect(await s.call('VM.get_parent', snap2)).toBe(snap);
  });

  it('VM.destroy removes the VM, its VBDs and VIFs but never its VDIs', async () => {
    const web = await vmRef('web');
    const snap = await s.async('VM.snapshot', web, 'to-destroy', []);
    const vdis = await vdisOf(snap);
    const vbds = await s.call<string[]>('VM.get_VBDs', snap);
    await s.call('VM.destroy', snap);
    expect(await s.failure('VM.get_record', snap)).toEqual(['HANDLE_INVALID', 'VM', snap]);
    expect(await s.failure('VBD.get_record', vbds[0])).toEqual(['HANDLE_INVALID', 'VBD', vbds[0]]);
    for (const v of vdis) {
      expect((await s.call<Rec>('VDI.get_record', v)).VBDs).toEqual([]);
      await s.call('VDI.destroy', v);
    }
    expect(await s.failure('VM.destroy', web)).toEqual([
      'VM_BAD_POWER_STATE',
      web,
      'halted, suspended',
      'running',
    ]);
  });
});

describe('VM.clone / VM.copy', () => {
  it('a replica with start blocked clones into a startable VM (xapi_vm_clone copy_vm_record: blocked_operations [])', async () => {
    const web = await vmRef('web');
    const snap = await s.async('VM.snapshot', web, 'base', []);
    const replica = await s.async('VM.copy', snap, 'replica', 'OpaqueRef:NULL');
    expect(await s.call<Rec>('VM.get_record', replica)).toMatchObject({
      is_a_snapshot: false,
      is_a_template: true,
      snapshot_of: 'OpaqueRef:NULL',
    });
    await s.call('VM.set_is_a_template', replica, false);
    await s.call('VM.set_blocked_operations', replica, {
      start: 'recovery point',
      start_on: 'recovery point',
    });
    expect(await s.failure('VM.start', replica, false, false)).toEqual([
      'OPERATION_BLOCKED',
      replica,
      'recovery point',
    ]);
    const clone = await s.async('VM.clone', replica, 'failover');
    expect(await s.call('VM.get_blocked_operations', clone)).toEqual({});
    await s.async('VM.start', clone, false, false);
    expect(await s.call('VM.get_power_state', clone)).toBe('Running');
    // clones share content; clone VDIs are not snapshots
    const [cv] = await vdisOf(clone);
    expect(await s.call<Rec>('VDI.get_record', cv)).toMatchObject({
      is_a_snapshot: false,
      snapshot_of: 'OpaqueRef:NULL',
    });
    const [rv] = await vdisOf(replica);
    expect(pool.test.hashVdi(await s.call('VDI.get_uuid', cv))).toBe(
      pool.test.hashVdi(await s.call('VDI.get_uuid', rv)),
    );
    // VDI_IN_USE while the clone runs; fine after shutdown
    expect(await s.failure('VDI.destroy', cv)).toEqual(['VDI_IN_USE', cv, 'destroy']);
    await s.async('VM.hard_shutdown', clone);
    expect(await s.failure('VM.start', snap, false, false)).toEqual(['VM_IS_SNAPSHOT', snap, 'start']);
  });

  it('VM.copy into another SR fails like a full SR when space runs out', async () => {
    const web = await vmRef('web');
    const snap = await s.async('VM.snapshot', web, 'big', []);
    const tiny = (await s.call<string[]>('SR.get_by_name_label', 'Tiny'))[0];
    const vdisBefore = (await s.call<string[]>('VDI.get_all')).length;
    const err = await s.async('VM.copy', snap, 'nope', tiny).catch((e: XapiFailure) => e);
    expect(err).toBeInstanceOf(XapiFailure);
    expect((err as XapiFailure).description).toEqual([
      'SR_BACKEND_FAILURE_44',
      '',
      'There is insufficient space',
      '',
    ]);
    expect((await s.call<string[]>('VDI.get_all')).length).toBe(vdisBefore);
  });
});

describe('VDI operations', () => {
  it('create rounds to 2 MiB, tracks SR sizes, refuses past capacity, resize grows', async () => {
    const tiny = (await s.call<string[]>('SR.get_by_name_label', 'Tiny'))[0];
    const rec = {
      SR: tiny,
      virtual_size: String(3 * MiB),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    };
    const v = await s.call<string>('VDI.create', { ...rec, name_label: 'x' });
    expect(await s.call('VDI.get_virtual_size', v)).toBe(String(4 * MiB));
    expect(await s.call('SR.get_virtual_allocation', tiny)).toBe(String(4 * MiB));
    expect(await s.failure('VDI.create', { ...rec, virtual_size: String(16 * MiB) })).toEqual([
      'SR_BACKEND_FAILURE_44',
      '',
      'There is insufficient space',
      '',
    ]);
    const missing = await s.failure('VDI.create', { SR: tiny, virtual_size: '1' });
    expect(missing[0]).toBe('INTERNAL_ERROR');
    await s.async('VDI.resize', v, String(6 * MiB));
    expect(await s.call('VDI.get_virtual_size', v)).toBe(String(6 * MiB));
    const uuid = await s.call<string>('VDI.get_uuid', v);
    pool.test.writeVdi(uuid, 0, Buffer.alloc(10, 1));
    expect(await s.call('SR.get_physical_utilisation', tiny)).toBe(String(2 * MiB));
    await s.call('VDI.destroy', v);
    expect(await s.call('SR.get_physical_utilisation', tiny)).toBe('0');
  });

  it('snapshot/clone/copy with base and into apply only the difference', async () => {
    const halted = await vmRef('halted');
    const [vdi] = await vdisOf(halted);
    const uuid = await s.call<string>('VDI.get_uuid', vdi);
    pool.test.writeVdi(uuid, 0, Buffer.alloc(MiB, 1));
    const s1 = await s.async('VDI.snapshot', vdi, {});
    expect(await s.call<Rec>('VDI.get_record', s1)).toMatchObject({ is_a_snapshot: true, snapshot_of: vdi });
    expect(await s.call('VDI.get_snapshots', vdi)).toContain(s1);
    const replica = await s.async('VDI.copy', s1);
    pool.test.writeVdi(uuid, 2 * MiB + 5, Buffer.from('delta'));
    const s2 = await s.async('VDI.snapshot', vdi);
    // a base-only change is reverted by the delta too
    pool.test.writeVdi(await s.call<string>('VDI.get_uuid', replica), 0, Buffer.from('stale'));
    await s.async('VDI.copy', s2, 'OpaqueRef:NULL', s1, replica);
    const ru = await s.call<string>('VDI.get_uuid', replica);
    expect(pool.test.hashVdi(ru)).not.toBe(pool.test.hashVdi(await s.call<string>('VDI.get_uuid', s2)));
    // 'stale' sits in block 0, which did not change between s1 and s2: it stays (VDI.copy copies the delta only)
    expect(pool.test.readVdi(ru, 0, 5).toString()).toBe('stale');
    expect(pool.test.readVdi(ru, 2 * MiB + 5, 5).toString()).toBe('delta');
    const small = await s.call<string>('VDI.create', {
      SR: await s.call('VDI.get_SR', vdi),
      virtual_size: String(2 * MiB),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    });
    const tooSmall = await s
      .async('VDI.copy', s2, 'OpaqueRef:NULL', 'OpaqueRef:NULL', small)
      .catch((e: XapiFailure) => e);
    expect((tooSmall as XapiFailure).description).toEqual(['VDI_TOO_SMALL', small, String(4 * MiB)]);
    for (const v of [s1, s2, replica, small]) await s.call('VDI.destroy', v);
  });

  it('other_config of VDIs: MAP_DUPLICATE_KEY with the VDI class', async () => {
    const [vdi] = await vdisOf(await vmRef('halted'));
    await s.call('VDI.add_to_other_config', vdi, 'xcr:role', 'replica');
    expect(await s.failure('VDI.add_to_other_config', vdi, 'xcr:role', 'x')).toEqual([
      'MAP_DUPLICATE_KEY',
      'VDI',
      'other_config',
      vdi,
      'xcr:role',
    ]);
  });
});

describe('tasks', () => {
  it('Async returns a pending task that ends success once, with an XML-serialised result', async () => {
    const web = await vmRef('web');
    const task = await s.call<string>('Async.VM.snapshot', web, 'async');
    const first = await s.call<Rec>('task.get_record', task);
    expect(first.name_label).toBe('Async.VM.snapshot');
    const rec = await s.waitTask(task);
    expect(rec.status).toBe('success');
    expect(rec.progress).toBe(1);
    expect(rec.result).toMatch(/^<value>OpaqueRef:[0-9a-f-]+<\/value>$/);
    expect((rec.finished as Date).getTime()).toBeGreaterThan(0);
    // JSON-RPC clients see the same XML string
    const j = await fetch(`${pool.url}/jsonrpc`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', method: 'task.get_result', params: [s.ref, task], id: 1 }),
    });
    expect(((await j.json()) as { result: string }).result).toBe(rec.result);
    await s.call('task.destroy', task);
    expect(await s.failure('task.get_status', task)).toEqual(['HANDLE_INVALID', 'task', task]);
  });

  it('Async failures are delivered via the task, dispatch errors synchronously', async () => {
    const web = await vmRef('web');
    const t = await s.call<string>('Async.VM.clone', web, 'c');
    const rec = await s.waitTask(t);
    expect(rec.status).toBe('failure');
    expect(rec.error_info).toEqual(['VM_BAD_POWER_STATE', web, 'halted', 'running']);
    const t2 = await s.call<string>('Async.VDI.destroy', 'OpaqueRef:gone');
    expect((await s.waitTask(t2)).error_info).toEqual(['HANDLE_INVALID', 'VDI', 'OpaqueRef:gone']);
    expect(await s.failure('Async.VM.clone', web)).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'Async.VM.clone',
      '2',
      '1',
    ]);
  });

  it('task.create / cancel for client-tracked work', async () => {
    const t = await s.call<string>('task.create', 'mine', 'desc');
    expect(await s.call('task.get_status', t)).toBe('pending');
    await s.async('task.cancel', t);
    const rec = await s.call<Rec>('task.get_record', t);
    expect(rec.status).toBe('cancelled');
    expect(rec.error_info).toEqual(['TASK_CANCELLED', t]);
    await s.call('task.destroy', t);
  });
});

describe('event.from', () => {
  it('empty token returns every live object as add; then only changes; blocks until timeout', async () => {
    const first = await s.call<Rec>('event.from', ['vm'], '', 0);
    const evs = first.events as Rec[];
    expect(evs.length).toBe((await s.call<string[]>('VM.get_all')).length);
    expect(
      evs.every((e) => e.class === 'vm' && e.operation === 'add' && typeof e.snapshot === 'object'),
    ).toBe(true);
    expect((first.valid_ref_counts as Rec).vm).toBe(evs.length);
    const token = first.token as string;
    expect(token).toMatch(/^\d{20},\d{20}$/);
    const t0 = Date.now();
    const idle = await s.call<Rec>('event.from', ['vm'], token, 0.3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(idle.events).toEqual([]);
    const halted = await vmRef('halted');
    const waiting = s.call<Rec>('event.from', ['VM'], idle.token, 5);
    await new Promise((r) => setTimeout(r, 50));
    const other = await TestSession.login(pool.url, 'root', 'pw');
    await other.call('VM.set_name_description', halted, 'changed');
    await other.call('VM.set_name_label', halted, 'halted');
    const got = await waiting;
    const mods = (got.events as Rec[]).filter((e) => e.ref === halted);
    expect(mods).toHaveLength(1);
    expect(mods[0]).toMatchObject({ class: 'vm', operation: 'mod' });
    expect((mods[0]!.snapshot as Rec).name_description).toBe('changed');
  });

  it('task subscriptions by ref, del without snapshot, parse failures', async () => {
    const start = (await s.call<Rec>('event.from', ['task'], '', 0)).token as string;
    const t = await s.call<string>('task.create', 'watch', '');
    const add = await s.call<Rec>('event.from', [`task/${t}`], start, 1);
    expect((add.events as Rec[]).map((e) => e.operation)).toEqual(['add']);
    await s.call('task.destroy', t);
    const del = await s.call<Rec>('event.from', [`task/${t}`], add.token, 1);
    expect(del.events as Rec[]).toHaveLength(1);
    expect((del.events as Rec[])[0]).toMatchObject({ operation: 'del', ref: t });
    expect('snapshot' in (del.events as Rec[])[0]!).toBe(false);
    expect(await s.failure('event.from', ['vm'], 'garbage', 0)).toEqual([
      'EVENT_FROM_TOKEN_PARSE_FAILURE',
      'garbage',
    ]);
    expect(await s.failure('event.from', ['vm/'], '', 0)).toEqual([
      'EVENT_SUBSCRIPTION_PARSE_FAILURE',
      'vm/',
    ]);
  });
});
