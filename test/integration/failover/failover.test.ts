/** Failover to the destination pool and its undo, end to end on two simulated pools. */
import { afterEach, describe, expect, it } from 'vitest';
import {
  copies,
  disksOf,
  failover,
  undo,
  until,
  vifsOf,
  vmByUuid,
  withXapi,
} from '../../support/failover.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const vms = [
  {
    name_label: 'web',
    power_state: 'Running' as const,
    disks: [{ sizeBytes: 8 * MiB, data: [{ offset: 0, length: MiB, seed: 1 }] }],
    vifs: [{ network: 'Pool-wide network' }],
  },
  {
    name_label: 'db',
    disks: [{ sizeBytes: 8 * MiB, data: [{ offset: 0, length: MiB, seed: 2 }] }],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

async function start(): Promise<Sites> {
  sites = await startSites({ vms });
  expect((await sites.run()).status).toBe('succeeded');
  return sites;
}

const hashes = (s: Sites, vm: string) => s.recoveryPoints(vm).map((rp) => s.rpDiskHashes(rp));

async function hardStop(s: Sites, vm: string) {
  await withXapi(s.source, async (x) => {
    const ref = await x.getByUuid('VM', s.vmUuid(vm));
    await x.callAsync('VM.hard_shutdown', ref);
  });
}

describe('unplanned failover', () => {
  it('refuses while the source runs and answers; a running source needs --force', async () => {
    const s = await start();
    const r = await failover(s, { vms: [s.vmUuid('web')] });
    expect(r.vms[0]).toMatchObject({ status: 'refused', code: 'SOURCE_RUNNING' });
    expect(r.vms[0]!.message).toMatch(/--planned.*--force/);
    expect(copies(s)).toEqual([]);
    const forced = await failover(s, { vms: [s.vmUuid('web')], force: true });
    expect(forced.vms[0]).toMatchObject({ status: 'failed-over' });
    expect(forced.vms[0]!.warnings.join()).toMatch(/keeps running/);
  });

  it('clones the newest point into a started VM named like the source, fences the source, skips it in runs; undo restores replication', async () => {
    const s = await start();
    const web = s.vmUuid('web');
    expect((await s.run()).vms.find((v) => v.vmUuid === web)!.kind).toBe('delta');
    const rp = s.recoveryPoints('web')[0]!;
    const before = hashes(s, 'web');
    const events: string[] = [];
    s.deps.events.publishEvent = async (type) => {
      events.push(type);
    };
    await hardStop(s, 'web');
    const r = await failover(s, { vms: [web] });
    expect(r.vms).toHaveLength(1);
    const res = r.vms[0]!;
    expect(res).toMatchObject({ status: 'failed-over', point: rp.uuid });
    expect(events).toEqual(['xcr failover succeeded']);
    const copy = vmByUuid(s.destination, res.copy!);
    expect(copy.name_label).toBe('web');
    expect(copy.power_state).toBe('Running');
    expect(copy.blocked_operations).toEqual({});
    // the source's MACs, on the job's mapped network
    expect(vifsOf(s.destination, copy)).toEqual(
      vifsOf(s.source, vmByUuid(s.source, web)).map(([d, mac]) => [d, mac, 'Replica network']),
    );
    expect(s.destination.test.hashVdi(disksOf(s.destination, copy)[0]!)).toBe(s.rpDiskHashes(rp)[0]![1]);
    const record = JSON.parse(copy.other_config['xcr:failover']!);
    expect(record).toMatchObject({
      job: 'job1',
      vm: web,
      point: rp.uuid,
      copy: copy.uuid,
      state: 'failed-over',
    });
    // the fence: the source VM's start is blocked with a reason naming the copy
    const src = vmByUuid(s.source, web);
    expect(JSON.parse(src.other_config['xcr:failover']!)).toMatchObject({
      copy: copy.uuid,
      state: 'failed-over',
    });
    const refused = await withXapi(s.source, async (x) =>
      x.callAsync('VM.start', await x.getByUuid('VM', web), false, false).catch((e: unknown) => e),
    );
    expect(refused).toMatchObject({ code: 'OPERATION_BLOCKED' });
    expect((refused as { params: string[] }).params[1]).toContain(copy.uuid);
    // the job skips the failed-over VM and still replicates the other one
    const run = await s.run();
    expect(run.status).toBe('succeeded');
    expect(run.vms.map((v) => v.vmUuid)).toEqual([s.vmUuid('db')]);
    expect(run.skippedVms).toEqual([{ vmUuid: web, reason: expect.stringMatching(/^failed over to VM /) }]);
    expect(hashes(s, 'web')).toEqual(before);
    // a second failover is refused
    const again = await failover(s, { vms: [web] });
    expect(again.vms[0]).toMatchObject({ status: 'refused', code: 'ALREADY_FAILED_OVER' });
    // undo: the copy goes, the fence is lifted, the next run is a delta from the last point
    const u = await undo(s, web);
    expect(u.vms[0]).toMatchObject({ status: 'undone', copy: copy.uuid });
    expect(copies(s)).toEqual([]);
    const lifted = vmByUuid(s.source, web);
    expect(lifted.blocked_operations).toEqual({});
    expect(lifted.other_config['xcr:failover']).toBeUndefined();
    const next = await s.run();
    expect(next.vms.find((v) => v.vmUuid === web)).toMatchObject({ status: 'succeeded', kind: 'delta' });
    expect(next.skippedVms).toBeUndefined();
    s.assertReplicasMatchSource('web');
    s.assertNoLeaks();
  });

  it('fails over when the source pool is gone, leaving the recovery point as it was', async () => {
    const s = await start();
    const web = s.vmUuid('web');
    const rp = s.recoveryPoints('web')[0]!;
    const before = hashes(s, 'web');
    await s.source.close();
    const r = await failover(s, { vms: [web], start: false });
    expect(r.vms[0]).toMatchObject({ status: 'failed-over', point: rp.uuid });
    expect(r.vms[0]!.warnings.join()).toMatch(/did not answer/);
    expect(vmByUuid(s.destination, r.vms[0]!.copy!).power_state).toBe('Halted');
    expect(hashes(s, 'web')).toEqual(before);
    const rpNow = s.recoveryPoints('web')[0]!;
    expect(rpNow.blocked_operations).toEqual(rp.blocked_operations);
    expect(rpNow.other_config).toEqual(rp.other_config);
  });

  it('refuses an undo of a VM that is not failed over', async () => {
    const s = await start();
    await expect(undo(s, s.vmUuid('web'))).rejects.toThrow(/NOT_FAILED_OVER: .*not failed over/);
  });
});

describe('planned failover', () => {
  it('fences and cleanly shuts the source down, sends a final delta with the last writes, then starts the copy; undo restarts the source', async () => {
    sites = await startSites({
      vms: [{ ...vms[0]!, power_state: 'Halted' as const }],
    });
    const s = sites;
    const web = s.vmUuid('web');
    await withXapi(s.source, async (x) =>
      x.callAsync('VM.start', await x.getByUuid('VM', web), false, false),
    );
    await until(() => vmByUuid(s.source, web).guest_metrics !== 'OpaqueRef:NULL');
    expect((await s.run()).vms[0]!.kind).toBe('full');
    const points = s.recoveryPoints('web').length;
    // the guest writes after the last recovery point: a planned failover must not lose it
    const live = s.liveDisks('web')[0]!;
    s.source.test.writeVdi(live, 3 * MiB, Buffer.alloc(64 * 1024, 7));
    const r = await failover(s, { planned: true });
    const res = r.vms[0]!;
    expect(res).toMatchObject({ status: 'failed-over' });
    expect(res.finalDelta?.kind).toBe('delta');
    expect(s.recoveryPoints('web')).toHaveLength(points + 1);
    expect(res.point).toBe(res.finalDelta!.recoveryPoint);
    const src = vmByUuid(s.source, web);
    expect(src.power_state).toBe('Halted');
    expect((src.blocked_operations as Record<string, string>).start).toContain(res.copy!);
    const copy = vmByUuid(s.destination, res.copy!);
    expect(copy.power_state).toBe('Running');
    expect(s.destination.test.hashVdi(disksOf(s.destination, copy)[0]!)).toBe(s.source.test.hashVdi(live));
    s.assertNoLeaks();
    const u = await undo(s, web);
    expect(u.vms[0]!.status).toBe('undone');
    const back = vmByUuid(s.source, web);
    expect(back.power_state).toBe('Running');
    expect(back.blocked_operations).toEqual({});
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertNoLeaks();
  });
});
