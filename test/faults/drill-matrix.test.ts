/**
 * The fault matrix for drills. Discovery: one drill on fresh pools, its destination call log read
 * back (so a new XAPI call of a drill gets its scenario by itself). Then, for each call, the call
 * fails with SR_BACKEND_FAILURE_47 every time during one drill; whatever that drill reports, the
 * next drill (no faults) must pass, nothing of either drill may remain, and the recovery points
 * must be byte-identical to before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Sites, startSites } from '../support/sites.js';

const SKIP = new Set(['session.login_with_password', 'session.logout', 'task.destroy', 'task.get_record']);
const MiB = 2 ** 20;

let sites: Sites;
let calls: string[] = [];

const vms = [
  {
    name_label: 'app',
    disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 3 }] }],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

beforeAll(async () => {
  sites = await startSites({
    vms,
    destinationGuests: [{ delayMs: 50 }],
    job: {
      drill: { every: { afterRuns: 1 }, network: { name: 'Drill network' }, timeoutMinutes: 0.03 },
    } as never,
  });
  expect((await sites.run()).status).toBe('succeeded');
  const before = sites.destination.test.calls().length;
  expect((await sites.drill()).results[0]!.passed).toBe(true);
  calls = [
    ...new Set(
      sites.destination.test
        .calls()
        .slice(before)
        .map((c) => c.replace(/^Async\./, ''))
        .filter((c) => !SKIP.has(c)),
    ),
  ].sort();
}, 120_000);
afterAll(async () => {
  await sites?.close();
});

const drillLeft = () =>
  sites.destination.test.objects('VM').filter(([, r]) => {
    const oc = r.other_config as Record<string, string>;
    return oc['xcr:role'] === 'drill' || String(r.name_label).startsWith('[xcr-drill:');
  });
const hashes = () => sites.recoveryPoints('app').map((rp) => [rp.uuid, sites.rpDiskHashes(rp)]);

describe('drill fault matrix', () => {
  it('discovered every XAPI call of a drill', () => {
    for (const c of [
      'VM.clone',
      'VIF.create',
      'VIF.destroy',
      'VM.start',
      'VM.hard_shutdown',
      'VM.destroy',
      'VDI.destroy',
    ])
      expect(calls).toContain(c);
  });

  it('a failure of any drill call leaves nothing after the next drill and the points intact', async () => {
    expect(calls.length).toBeGreaterThan(10);
    const failures: string[] = [];
    for (const method of calls) {
      const before = hashes();
      sites.destination.test.injectFault({
        method,
        count: 1000,
        error: ['SR_BACKEND_FAILURE_47', '', 'injected'],
      });
      const faulty = await sites.drill().then(
        (r) => (r.results.every((x) => x.passed) ? 'passed' : 'failed'),
        (err: Error) => `threw ${err.message}`,
      );
      sites.destination.test.clearFaults();
      // Every clone of a recovery point's disk adds a VHD level until the storage manager's GC
      // coalesces it (minutes later on a real SR); drills are hours apart, so let it catch up.
      await sites.destination.test.settleStorage();
      const next = await sites.drill();
      const problems = [
        ...(next.results.every((x) => x.passed) ? [] : [`next drill: ${JSON.stringify(next.results)}`]),
        ...drillLeft().map(([, r]) => `left ${r.uuid}`),
        ...sites.leaks(),
        ...(JSON.stringify(hashes()) === JSON.stringify(before) ? [] : ['recovery points changed']),
      ];
      // event.from: the client falls back to polling the task, so the drill recovers.
      if (faulty === 'passed' && method !== 'event.from') problems.push('the faulty drill passed');
      if (problems.length) failures.push(`${method} (${faulty}): ${problems.join('; ')}`);
    }
    expect(failures).toEqual([]);
  }, 300_000);
});
