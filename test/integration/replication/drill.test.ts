/** Recovery drills against two simulated pools: a boot proven by guest tools or a xenstore key,
 *  a guest that never reports, crashed drills swept by the next run, a drill beside a run. */
import { afterEach, describe, expect, it } from 'vitest';
import type { GuestBehaviour } from '../../../sim/types.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const vms = [
  {
    name_label: 'web',
    disks: [{ sizeBytes: 8 * MiB, data: [{ offset: 0, length: MiB, seed: 1 }] }],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

async function start(guests: GuestBehaviour[], drill: Record<string, unknown> = {}): Promise<Sites> {
  sites = await startSites({
    vms,
    destinationGuests: guests,
    job: {
      drill: { every: { afterRuns: 1 }, network: 'none', check: 'tools', timeoutMinutes: 0.02, ...drill },
    } as never,
  });
  expect((await sites.run()).status).toBe('succeeded');
  return sites;
}

const drillObjects = (s: Sites) =>
  s.destination.test
    .objects('VM')
    .filter(
      ([, r]) =>
        (r.other_config as Record<string, string>)['xcr:role'] === 'drill' ||
        String(r.name_label).includes('xcr-drill'),
    );
const hashesOf = (s: Sites) => s.recoveryPoints('web').map((rp) => s.rpDiskHashes(rp));

describe('drill', () => {
  it('passes when the guest tools report: boot seconds, result on the point, nothing left', async () => {
    const s = await start([{ delayMs: 300 }]);
    const before = hashesOf(s);
    const rp = s.recoveryPoints('web')[0]!;
    const report = await s.drill();
    expect(report.results).toHaveLength(1);
    const r = report.results[0]!;
    expect(r).toMatchObject({ passed: true, recoveryPoint: rp.uuid, vm: s.vmUuid('web') });
    expect(r.bootSeconds).toBeGreaterThanOrEqual(0.3);
    expect(drillObjects(s)).toEqual([]);
    s.assertNoLeaks();
    const after = s.recoveryPoints('web')[0]!;
    expect(after.other_config['xcr:drill']).toMatch(/^passed \S+ [\d.]+s$/);
    expect(after.blocked_operations).toEqual(rp.blocked_operations);
    expect(after.power_state).toBe('Halted');
    expect(hashesOf(s)).toEqual(before);
    // The next run still uses the drilled point as its delta base (the result key is not tampering).
    const next = await s.run();
    expect(next.status).toBe('succeeded');
    expect(next.vms[0]!.kind).toBe('delta');
  });

  it('passes a xenstore check on the key the guest writes, on an isolated network with fresh MACs', async () => {
    const s = await start([{ delayMs: 50, xenstore: { 'vm-data/xcr-drill': 'booted' } }], {
      check: { xenstore: 'vm-data/xcr-drill' },
      network: { name: 'Drill network' },
    });
    const report = await s.drill();
    expect(report.results[0]).toMatchObject({ passed: true });
    s.assertNoLeaks();
    expect(s.destination.test.objects('VIF').filter(([, v]) => v.VM === undefined)).toEqual([]);
  });

  it('fails after the timeout when the guest never reports tools, and removes everything', async () => {
    const s = await start([{ outcome: 'silent' }]);
    const before = hashesOf(s);
    const report = await s.drill();
    expect(report.results[0]).toMatchObject({ passed: false, step: 'check' });
    expect(report.results[0]!.reason).toMatch(/timed out .*guest tools never reported/);
    expect(report.removed.some((x) => x.startsWith('VM '))).toBe(true);
    expect(drillObjects(s)).toEqual([]);
    s.assertNoLeaks();
    expect(s.recoveryPoints('web')[0]!.other_config['xcr:drill']).toMatch(
      /^failed \S+: check: DRILL_CHECK_TIMEOUT: timed out/,
    );
    expect(hashesOf(s)).toEqual(before);
  });

  it('fails when the guest crashes (actions_after_crash destroy → Halted)', async () => {
    const s = await start([{ outcome: 'crash', delayMs: 20 }]);
    const rp = s.recoveryPoints('web')[0]!;
    expect(rp.actions_after_crash).toBeDefined();
    const report = await s.drill();
    expect(report.results[0]!.passed).toBe(false);
    s.assertNoLeaks();
  });

  it('a drill that crashed after VM.start leaves a running clone the next run sweeps away', async () => {
    const s = await start([{ outcome: 'silent' }]);
    // The drill process dies after boot: simulate with a drill whose teardown never happens.
    const { clonePoint, boot } = await import('../../../functions/replication/drill/steps.js');
    const { Xapi } = await import('../../../functions/xapi/index.js');
    const x = await Xapi.connect({
      url: s.destination.url,
      username: 'root',
      password: s.destination.password,
      allowPlainHttp: true,
    });
    const clone = await clonePoint(x, 'job1', 'crashed-1', s.recoveryPoints('web')[0]!.uuid);
    // and one caught between VM.clone and its tagging
    const rpRef = await x.getByUuid('VM', s.recoveryPoints('web')[0]!.uuid);
    await x.callAsync('VM.clone', rpRef, '[xcr-drill:job1:crashed-2] pending clone');
    // a user's clone of the drill clone is never touched
    const user = await x.callAsync<string>('VM.clone', await x.getByUuid('VM', clone), 'my copy');
    await boot(x, 'job1', 'crashed-1', clone);
    expect(s.leaks().length).toBeGreaterThan(0);
    const r = await s.run();
    expect(r.status).toBe('succeeded');
    const left = drillObjects(s).map(([ref]) => ref);
    expect(left).toEqual([user]);
    await x.destroy('VM', user);
    for (const [ref, vdi] of s.destination.test.objects('VDI')) {
      const oc = vdi.other_config as Record<string, string>;
      if (oc['xcr:role'] === 'drill-disk' && oc['xcr:self'] !== vdi.uuid) await x.destroy('VDI', ref);
    }
    await x.logout();
    s.assertNoLeaks();
  });

  it('runs beside a replication run: both succeed, the drilled point is kept until the drill ends', async () => {
    sites = await startSites({
      vms,
      destinationGuests: [{ delayMs: 5000 }],
      job: { retention: 1, drill: { every: { afterRuns: 1 }, timeoutMinutes: 0.5 } } as never,
    });
    const s = sites;
    expect((await s.run()).status).toBe('succeeded');
    const drilled = s.recoveryPoints('web')[0]!;
    const drillP = s.drill();
    await new Promise((r) => setTimeout(r, 250));
    s.source.test.writeVdi(s.liveDisks('web')[0]!, 0, Buffer.alloc(4096, 7));
    const run = await s.run();
    // the run finished while the drill's guest was still booting
    expect(drillObjects(s)).toHaveLength(1);
    expect(run.status).toBe('succeeded');
    // retention 1, but the point under drill is still there
    expect(s.recoveryPoints('web').map((r) => r.uuid)).toContain(drilled.uuid);
    const report = await drillP;
    expect(report.results[0]).toMatchObject({ passed: true, recoveryPoint: drilled.uuid });
    expect((await s.run()).status).toBe('succeeded');
    expect(s.recoveryPoints('web').map((r) => r.uuid)).not.toContain(drilled.uuid);
    s.assertNoLeaks();
  });
});
