/** Delta failback into the original VM, end to end on two simulated pools: only the blocks written
 *  at DR travel, the original VM keeps its identity, the next forward run is a delta. */
import { afterEach, describe, expect, it } from 'vitest';
import {
  copies,
  disksOf,
  failback,
  failover,
  failoverObjects,
  until,
  vifsOf,
  vmByUuid,
  withXapi,
} from '../../support/failover.js';
import { BLOCK, MiB, type Sites, type SitesOptions, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const SIZE = 32 * MiB;
const vms = [
  {
    name_label: 'web',
    tags: ['prod'],
    disks: [
      { sizeBytes: SIZE, data: [{ offset: 0, length: 8 * MiB, seed: 1 }] },
      { sizeBytes: SIZE, userdevice: '1', data: [{ offset: 0, length: 4 * MiB, seed: 2 }] },
    ],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

/** Blocks (BLOCK bytes) in which two disks of the destination differ. */
function changedBlocks(s: Sites, a: string, b: string): number {
  let n = 0;
  for (let at = 0; at < SIZE; at += BLOCK) {
    if (!s.destination.test.readVdi(a, at, BLOCK).equals(s.destination.test.readVdi(b, at, BLOCK))) n++;
  }
  return n;
}

/** Runs the job, fails the (halted) VM over unplanned, lets the DR copy's guest boot. */
async function failedOver(
  o: Partial<SitesOptions> = {},
): Promise<{ s: Sites; web: string; copy: string; point: string }> {
  sites = await startSites({ vms, ...o });
  const s = sites;
  const web = s.vmUuid('web');
  expect((await s.run()).status).toBe('succeeded');
  const r = await failover(s, { vms: [web] });
  expect(r.vms[0]!.status).toBe('failed-over');
  const copy = r.vms[0]!.copy!;
  await until(() => vmByUuid(s.destination, copy).guest_metrics !== 'OpaqueRef:NULL');
  return { s, web, copy, point: r.vms[0]!.point! };
}

describe('failback', () => {
  it('is refused for a VM that is not failed over', async () => {
    sites = await startSites({ vms });
    expect((await sites.run()).status).toBe('succeeded');
    await expect(failback(sites, sites.vmUuid('web'), true)).rejects.toThrow(/NOT_FAILED_OVER/);
  });

  it('planned: sends only the blocks written at DR into the original VM, which keeps its uuid and MACs; the next run is a delta', async () => {
    const { s, web, copy, point } = await failedOver();
    const original = vmByUuid(s.source, web);
    const macs = vifsOf(s.source, original);
    const oldDisks = disksOf(s.source, original);
    // guest writes at DR: three blocks on disk 0, one on disk 1
    const [d0, d1] = disksOf(s.destination, vmByUuid(s.destination, copy));
    s.destination.test.writeVdi(d0!, 2 * MiB + 4096, Buffer.alloc(8192, 0xa1));
    s.destination.test.writeVdi(d0!, 20 * MiB, Buffer.alloc(2 * MiB + 512, 0xa2));
    s.destination.test.writeVdi(d1!, 30 * MiB, Buffer.alloc(4096, 0xa3));
    const rp = vmByUuid(s.destination, point);
    const [r0, r1] = disksOf(s.destination, rp);
    const changed = changedBlocks(s, d0!, r0!) + changedBlocks(s, d1!, r1!);
    expect(changed).toBe(4);
    const rpHashes = s.rpDiskHashes(rp as never);
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const exportedBefore = s.destination.test.exportedBytes();
    const events: string[] = [];
    s.deps.events.publishEvent = async (type) => {
      events.push(type);
    };
    const r = await failback(s, web, true);
    const wire = s.destination.test.exportedBytes() - exportedBefore;
    expect(r.status).toBe('failed-back');
    expect(r.bytes).toBe(wire);
    expect(wire).toBeGreaterThanOrEqual(changed * BLOCK);
    expect(wire).toBeLessThanOrEqual(1.01 * changed * BLOCK);
    expect(events).toEqual(['xcr failback succeeded']);
    // the original VM: same uuid, MACs, tags; its disks hold what the copy had at cutover
    const back = vmByUuid(s.source, web);
    expect(back.power_state).toBe('Running');
    expect(back.tags).toEqual(['prod']);
    expect(vifsOf(s.source, back)).toEqual(macs);
    expect(back.blocked_operations).toEqual({});
    expect(back.other_config['xcr:failover']).toBeUndefined();
    const now = disksOf(s.source, back);
    expect(now).not.toEqual(oldDisks);
    expect(r.replacedDisks).toEqual(oldDisks);
    expect(now.map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(copies(s)).toEqual([]);
    // the copy's final state is the newest recovery point; the old ones are untouched
    const newest = s.recoveryPoints('web')[0]!;
    expect(newest.uuid).toBe(r.recoveryPoint);
    expect(s.rpDiskHashes(newest).map(([, h]) => h)).toEqual(now.map((v) => s.source.test.hashVdi(v)));
    expect(s.rpDiskHashes(vmByUuid(s.destination, point) as never)).toEqual(rpHashes);
    s.assertReplicasMatchSource('web');
    // forward replication resumes as a delta
    const next = await s.run();
    expect(next.vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    expect(next.skippedVms).toBeUndefined();
    s.assertReplicasMatchSource('web');
    s.assertNoLeaks();
  });

  it('a pre-sync while the copy runs, then the planned failback sends only what changed since', async () => {
    const { s, web, copy } = await failedOver();
    const [d0] = disksOf(s.destination, vmByUuid(s.destination, copy));
    s.destination.test.writeVdi(d0!, 6 * MiB, Buffer.alloc(4 * MiB, 0xb1));
    const pre = await failback(s, web, false);
    expect(pre.status).toBe('synced');
    expect(pre.bytes).toBeGreaterThanOrEqual(2 * BLOCK);
    expect(pre.bytes).toBeLessThanOrEqual(1.01 * 2 * BLOCK);
    expect(vmByUuid(s.destination, copy).power_state).toBe('Running');
    // still failed over: the job skips the VM
    expect((await s.run()).skippedVms?.[0]?.vmUuid).toBe(web);
    s.destination.test.writeVdi(d0!, 14 * MiB, Buffer.alloc(512, 0xb2));
    const final = await failback(s, web, true);
    expect(final.status).toBe('failed-back');
    expect(final.bytes).toBeLessThanOrEqual(1.01 * BLOCK);
    expect(final.bytes).toBeGreaterThanOrEqual(BLOCK);
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertReplicasMatchSource('web');
    s.assertNoLeaks();
  });

  it('with the base snapshot gone, sends the whole disks into new disks of the original VM, saying why', async () => {
    const { s, web, copy } = await failedOver();
    const base = s.exportedSnapshot('web')!;
    await withXapi(s.source, async (x) => {
      const ref = await x.getByUuid('VM', base.uuid);
      const vbds = (await x.getRecord('VM', ref)).VBDs;
      const vdis = [];
      for (const v of vbds) vdis.push((await x.getRecord('VBD', v)).VDI);
      await x.callAsync('VM.destroy', ref);
      for (const v of vdis) if (v !== 'OpaqueRef:NULL') await x.callAsync('VDI.destroy', v);
    });
    const [d0] = disksOf(s.destination, vmByUuid(s.destination, copy));
    s.destination.test.writeVdi(d0!, 10 * MiB, Buffer.alloc(4096, 0xc1));
    const atCutover = disksOf(s.destination, vmByUuid(s.destination, copy)).map((v) =>
      s.destination.test.hashVdi(v),
    );
    const r = await failback(s, web, true);
    expect(r.status).toBe('failed-back');
    expect(r.warnings.join()).toMatch(/base snapshot .* is gone .* whole disks/);
    expect(r.bytes).toBeGreaterThan(12 * MiB);
    const back = vmByUuid(s.source, web);
    expect(back.power_state).toBe('Running');
    expect(disksOf(s.source, back).map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertReplicasMatchSource('web');
    s.assertNoLeaks();
  });

  it('planned failback refuses an original VM that runs (a forced failover left it running)', async () => {
    sites = await startSites({ vms: [{ ...vms[0]!, power_state: 'Running' as const }] });
    const s = sites;
    const web = s.vmUuid('web');
    expect((await s.run()).status).toBe('succeeded');
    expect((await failover(s, { vms: [web], force: true })).vms[0]!.status).toBe('failed-over');
    await expect(failback(s, web, true)).rejects.toThrow(/ORIGINAL_RUNNING/);
    await withXapi(s.source, async (x) => x.callAsync('VM.hard_shutdown', await x.getByUuid('VM', web)));
    await until(() => vmByUuid(s.destination, copies(s)[0]!.uuid).guest_metrics !== 'OpaqueRef:NULL');
    expect((await failback(s, web, true)).status).toBe('failed-back');
    s.assertNoLeaks();
  });

  it('the original VM gone: a pre-sync into new disks, then the planned failback makes a new VM of them, saying why; the job protects it by its tag', async () => {
    const { s, web, copy } = await failedOver({ job: { vms: { tag: 'prod' } } });
    // the operator deleted the original VM with its snapshots and disks
    await withXapi(s.source, async (x) => {
      const ref = await x.getByUuid('VM', web);
      const rec = await x.getRecord('VM', ref);
      for (const vm of [...rec.snapshots, ref]) {
        const vdis = [];
        for (const v of (await x.getRecord('VM', vm)).VBDs) vdis.push((await x.getRecord('VBD', v)).VDI);
        await x.callAsync('VM.destroy', vm);
        for (const v of vdis) if (v !== 'OpaqueRef:NULL') await x.callAsync('VDI.destroy', v);
      }
    });
    const [d0, d1] = disksOf(s.destination, vmByUuid(s.destination, copy));
    s.destination.test.writeVdi(d0!, 10 * MiB, Buffer.alloc(4096, 0xd1));
    const pre = await failback(s, web, false);
    expect(pre.status).toBe('synced');
    expect(pre.warnings.join()).toMatch(/original VM .* is gone .* whole disks into new disks/);
    expect(pre.bytes).toBeGreaterThan(12 * MiB);
    s.destination.test.writeVdi(d1!, 3 * MiB, Buffer.alloc(4096, 0xd2));
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const copyVifs = vifsOf(s.destination, vmByUuid(s.destination, copy)).map(([dev, mac]) => [dev, mac]);
    const r = await failback(s, web, true);
    expect(r.status).toBe('failed-back');
    expect(r.bytes).toBeLessThanOrEqual(1.01 * BLOCK);
    const made = r.newVm!;
    expect(made).toBeDefined();
    expect(made).not.toBe(web);
    expect(r.warnings.join('\n')).toContain(
      `the original VM ${web} is gone from the source pool: the failback made VM ${made} there from a full copy of the DR copy; it carries the job's tag "prod"`,
    );
    const vm = vmByUuid(s.source, made);
    expect(vm).toMatchObject({ power_state: 'Running', name_label: 'web', tags: ['prod'] });
    expect(Object.keys(vm.other_config).filter((k) => k.startsWith('xcr:'))).toEqual([]);
    expect(vifsOf(s.source, vm)).toEqual(copyVifs.map(([dev, mac]) => [dev, mac, 'Pool-wide network']));
    expect(disksOf(s.source, vm).map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(copies(s)).toEqual([]);
    expect(failoverObjects(s)).toEqual([]);
    // the copy's final state is the new VM's recovery point; forward replication resumes as a delta
    const rp = s.destination.test
      .objects('VM')
      .map(([, v]) => v as { uuid: string; other_config: Record<string, string> })
      .find((v) => v.other_config['xcr:vm'] === made && v.other_config['xcr:status'] === 'complete');
    expect(rp?.uuid).toBe(r.recoveryPoint);
    expect(s.rpDiskHashes(rp as never).map(([, h]) => h)).toEqual(atCutover);
    const next = await s.run();
    expect(next.vms).toMatchObject([{ vmUuid: made, status: 'succeeded', kind: 'delta' }]);
    s.assertNoLeaks();
  });

  // A planned failback that fails after its cutover is finished by the operator's retry (a new run,
  // no faults), also when the DR copy (and its record) went before the failure. The fault is
  // injected into the simulator as the fault matrix does. [pool, call, the failing attempt got past
  // the cutover (else the retry repeats the cutover)]
  for (const [side, method, past] of [
    ['destination', 'VDI.destroy', true],
    ['source', 'VM.start', true],
    ['source', 'VM.remove_from_other_config', false],
  ] as const) {
    it(`a ${side} ${method} failing during a planned failback: the retry finishes it`, async () => {
      const { s, web, copy } = await failedOver();
      const [d0] = disksOf(s.destination, vmByUuid(s.destination, copy));
      s.destination.test.writeVdi(d0!, 2 * MiB, Buffer.alloc(4096, 0x5e));
      const atCutover = disksOf(s.destination, vmByUuid(s.destination, copy)).map((v) =>
        s.destination.test.hashVdi(v),
      );
      const pool = side === 'source' ? s.source : s.destination;
      pool.test.injectFault({ method, count: 1000, error: ['SR_BACKEND_FAILURE_47', '', 'injected'] });
      await expect(failback(s, web, true)).rejects.toThrow(/SR_BACKEND_FAILURE_47/);
      pool.test.clearFaults();
      // the original has the copy's disks already (the fault came after the swap)
      expect(disksOf(s.source, vmByUuid(s.source, web)).map((v) => s.source.test.hashVdi(v))).toEqual(
        atCutover,
      );
      const retry = await failback(s, web, true);
      expect(retry.status).toBe('failed-back');
      expect(/got past its cutover/.test(retry.warnings.join())).toBe(past);
      const back = vmByUuid(s.source, web);
      expect(back.power_state).toBe('Running');
      expect(back.other_config['xcr:failover']).toBeUndefined();
      expect(back.blocked_operations).toEqual({});
      expect(copies(s)).toEqual([]);
      await expect(failback(s, web, true)).rejects.toThrow(/NOT_FAILED_OVER/);
      expect(failoverObjects(s)).toEqual([]);
      expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
      s.assertReplicasMatchSource('web');
      s.assertNoLeaks();
    });
  }
});
