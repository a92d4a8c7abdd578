/** The drill state machine in the local runner: the check loop, afterRuns, a crashed drill, a held lease. */
import { afterEach, describe, expect, it } from 'vitest';
import type { StateEvent } from '../../../cli/local-runner.js';
import type { DrillReport } from '../../../functions/replication/drill/contract.js';
import { drillLeaseKey } from '../../../functions/replication/drill/lease.js';
import type { GuestBehaviour } from '../../../sim/types.js';
import { MiB, type Sites, type SitesOptions, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const vms = [
  {
    name_label: 'web',
    disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 5 }] }],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

async function start(guests: GuestBehaviour[], job: SitesOptions['job'] = {}): Promise<Sites> {
  sites = await startSites({
    vms,
    destinationGuests: guests,
    job: {
      drill: { every: { afterRuns: 1 }, network: 'none', check: 'tools', timeoutMinutes: 0.05 },
      ...job,
    } as never,
  });
  return sites;
}

const drillClones = (s: Sites) =>
  s.destination.test
    .objects('VM')
    .filter(
      ([, r]) =>
        (r.other_config as Record<string, string>)['xcr:role'] === 'drill' ||
        String(r.name_label).startsWith('[xcr-drill:'),
    );

describe('the drill state machine (local runner)', () => {
  it('check hands back to check-wait until the guest reports, then teardown; boot seconds cover the waits', async () => {
    const s = await start([{ delayMs: 900 }]);
    expect((await s.run()).status).toBe('succeeded');
    const events: StateEvent[] = [];
    const report = await s.drill(
      {},
      { timing: { pollMs: 50, sliceMs: 150 }, onStateEvent: (e) => events.push(e) },
    );
    expect(report.status).toBe('passed');
    expect(report.results[0]!.bootSeconds).toBeGreaterThanOrEqual(0.9);
    const entered = (name: string) =>
      events.filter(
        (e) => e.type === 'StateEntered' && (e as { state: { name: string } }).state.name === name,
      ).length;
    expect(entered('check-wait')).toBeGreaterThanOrEqual(2);
    expect(entered('check')).toBe(entered('check-wait') + 1);
    expect(entered('teardown')).toBe(1);
    expect(entered('report')).toBe(1);
    expect(drillClones(s)).toEqual([]);
    s.assertNoLeaks();
  });

  it('drill.every { afterRuns: 2 }: a drill after every 2nd successful run, counted on the recovery points', async () => {
    const s = await start([{ delayMs: 50 }], {
      retention: 2,
      drill: { every: { afterRuns: 2 }, timeoutMinutes: 0.05 },
    } as never);
    const outcomes: string[] = [];
    for (let i = 0; i < 5; i++) {
      s.source.test.writeVdi(s.liveDisks('web')[0]!, 0, Buffer.alloc(4096, i + 1));
      const run = await s.run();
      expect(run.status).toBe('succeeded');
      const o = await s.drillOutcome({ afterRun: run.runId });
      outcomes.push('status' in o ? o.status : 'not due');
    }
    // runs 2 and 4 make it due; the drilled point of run 2 falls out of retention after run 4
    expect(outcomes).toEqual(['not due', 'passed', 'not due', 'passed', 'not due']);
    // a run that is not due takes no lease and touches nothing
    expect((await s.leases.acquire(drillLeaseKey('job1'), 'probe', 1000)).acquired).toBe(true);
    await s.leases.release(drillLeaseKey('job1'), 'probe');
    s.assertNoLeaks();
  });

  it('a drill whose process dies after VM.start: its clone runs on until the lease expires, then the next run sweeps it', async () => {
    const s = await start([{ outcome: 'silent' }]);
    expect((await s.run()).status).toBe('succeeded');
    let booted!: () => void;
    const afterBoot = new Promise<void>((resolve) => {
      booted = resolve;
    });
    // The drill "crashes" at check: the execution never gets further (its handler never returns).
    void s.drill(
      {},
      {
        wrapStep: (step, h) =>
          step === 'check'
            ? () => {
                booted();
                return new Promise(() => {});
              }
            : h,
      },
    );
    await afterBoot;
    const running = drillClones(s);
    expect(running).toHaveLength(1);
    expect(running[0]![1].power_state).toBe('Running');
    // A run while the crashed drill still holds its lease leaves the clone alone (it may be live)...
    expect((await s.run()).status).toBe('succeeded');
    expect(drillClones(s)).toHaveLength(1);
    // ...and once the lease has expired, the next run's sweep removes the clone and its disks.
    s.advanceClock((0.05 + 16) * 60_000);
    expect((await s.run()).status).toBe('succeeded');
    expect(drillClones(s)).toEqual([]);
    s.assertNoLeaks();
  });

  it('a drill that finds the drill lease held reports failed and touches nothing of the holder', async () => {
    const s = await start([{ delayMs: 50 }]);
    expect((await s.run()).status).toBe('succeeded');
    expect((await s.leases.acquire(drillLeaseKey('job1'), 'drill-other', 60_000)).acquired).toBe(true);
    const report: DrillReport = await s.drill();
    expect(report.status).toBe('failed');
    expect(report.reason).toMatch(/^DRILL_RUNNING: drill-other holds the drill lease of job job1/);
    expect(report.results).toEqual([]);
    // the holder keeps its lease
    expect((await s.leases.acquire(drillLeaseKey('job1'), 'probe', 1000)).acquired).toBe(false);
    // started after a run (afterRuns), the held lease means a drill is already under way: not due
    const afterRun = await s.drillOutcome({ afterRun: 'run-x' });
    expect(afterRun).toMatchObject({ due: false, reason: 'drill-other holds the drill lease' });
    await s.leases.release(drillLeaseKey('job1'), 'drill-other');
    expect((await s.drill()).status).toBe('passed');
  });

  it('a job with no recovery point yet: the drill fails with the reason, nothing made', async () => {
    const s = await start([{ delayMs: 50 }]);
    const report = await s.drill();
    expect(report).toMatchObject({ status: 'failed', results: [] });
    expect(report.reason).toMatch(/NO_RECOVERY_POINT: job job1 has no complete recovery point/);
    expect((await s.leases.acquire(drillLeaseKey('job1'), 'probe', 1000)).acquired).toBe(true);
  });
});
