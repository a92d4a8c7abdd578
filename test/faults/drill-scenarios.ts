/**
 * The fault matrix for drills, each drill an execution of the synthesized drill state machine in
 * the local runner. Discovery: one drill on fresh pools, its destination call log read back (so a
 * new XAPI call of a drill gets its scenario by itself). Then, for each call, the call fails with
 * SR_BACKEND_FAILURE_47 every time during one drill; and for each drill step, the drill process
 * dies inside it (the execution never goes on). Whatever that drill did, the next run (after the
 * dead drill's lease expired) and the next drill must succeed, nothing of either drill may remain,
 * and the recovery points must be byte-identical to before.
 */
import type { DrillPointStep } from '../../functions/replication/drill/contract.js';
import { type Sites, startSites } from '../support/sites.js';
import type { ScenarioResult } from './scenarios.js';

const SKIP = new Set(['session.login_with_password', 'session.logout', 'task.destroy', 'task.get_record']);
const MiB = 2 ** 20;
const TIMEOUT_MINUTES = 0.03;

export interface DrillScenario {
  name: string;
  /** Sets the fault up; returns the drill's step wrapper when the fault is a dying process. */
  inject(sites: Sites): { dies?: DrillPointStep };
  /** A fault the drill recovers from (event.from: the client polls the task instead). */
  recovers?: boolean;
}

async function newDrillSites(): Promise<Sites> {
  const sites = await startSites({
    vms: [
      {
        name_label: 'app',
        disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 3 }] }],
        vifs: [{ network: 'Pool-wide network' }],
      },
    ],
    destinationGuests: [{ delayMs: 50 }],
    job: {
      drill: { every: { afterRuns: 1 }, network: { name: 'Drill network' }, timeoutMinutes: TIMEOUT_MINUTES },
    } as never,
  });
  const first = await sites.run();
  if (first.status !== 'succeeded') throw new Error(`setup run ${first.status}`);
  return sites;
}

/** The destination's XAPI calls of one passing drill (Async. folded in), sorted. */
export function drillCalls(sites: Sites, from: number): string[] {
  return [
    ...new Set(
      sites.destination.test
        .calls()
        .slice(from)
        .map((c) => c.replace(/^Async\./, ''))
        .filter((c) => !SKIP.has(c)),
    ),
  ].sort();
}

export function drillScenarios(calls: string[]): DrillScenario[] {
  return [
    ...calls.map((method) => ({
      name: `drill: destination ${method} fails`,
      recovers: method === 'event.from',
      inject: (sites: Sites) => {
        sites.destination.test.injectFault({
          method,
          count: 1000,
          error: ['SR_BACKEND_FAILURE_47', '', 'injected'],
        });
        return {};
      },
    })),
    ...(['clone-point', 'isolate', 'boot', 'check'] as const).map((step) => ({
      name: `drill: process dies after ${step}`,
      inject: () => ({ dies: step }),
    })),
  ];
}

const drillLeft = (sites: Sites) =>
  sites.destination.test.objects('VM').filter(([, r]) => {
    const oc = r.other_config as Record<string, string>;
    return oc['xcr:role'] === 'drill' || String(r.name_label).startsWith('[xcr-drill:');
  });
const hashes = (sites: Sites) =>
  new Map(sites.recoveryPoints('app').map((rp) => [rp.uuid, JSON.stringify(sites.rpDiskHashes(rp))]));

/** The points of `before` that are still there are byte-identical, and the newest one is still there
 *  (the run after a dead drill makes a new point, and retention may drop the oldest). */
function pointsIntact(before: Map<string, string>, after: Map<string, string>): boolean {
  const newest = [...before.keys()][0];
  if (newest && !after.has(newest)) return false;
  return [...before].every(([uuid, h]) => !after.has(uuid) || after.get(uuid) === h);
}

async function runOne(sites: Sites, s: DrillScenario): Promise<ScenarioResult> {
  const problems: string[] = [];
  const before = hashes(sites);
  const { dies } = s.inject(sites);
  let faulty: string;
  if (dies) {
    let died!: () => void;
    const dead = new Promise<void>((r) => {
      died = r;
    });
    // The process dies once the step's work is done: its result never reaches the state machine.
    void sites.drill(
      {},
      {
        wrapStep: (step, h) =>
          step === dies
            ? async (input) => {
                await h(input);
                died();
                return new Promise(() => {});
              }
            : h,
      },
    );
    await dead;
    faulty = 'died';
    // The dead drill's lease runs out; then the next run sweeps what it left.
    sites.advanceClock((TIMEOUT_MINUTES + 16) * 60_000);
    const run = await sites.run();
    if (run.status !== 'succeeded') problems.push(`the next run ${run.status}`);
  } else {
    const r = await sites.drill().catch((err: Error) => err);
    faulty = r instanceof Error ? `threw ${r.message}` : r.status;
    if (!(r instanceof Error) && r.status === 'passed' && !s.recovers)
      problems.push('the faulty drill passed');
  }
  sites.destination.test.clearFaults();
  // Every clone of a recovery point's disk adds a VHD level until the storage manager's GC
  // coalesces it (minutes later on a real SR); drills are hours apart, so let it catch up.
  await sites.destination.test.settleStorage();
  const next = await sites.drill();
  if (next.status !== 'passed') problems.push(`next drill: ${next.reason}`);
  problems.push(...drillLeft(sites).map(([, r]) => `left ${r.uuid}`));
  const leaks = sites.leaks();
  problems.push(...leaks);
  const intact = pointsIntact(before, hashes(sites));
  if (!intact) problems.push('recovery points changed');
  return {
    name: s.name,
    passed: problems.length === 0,
    recoveryPointsIntact: intact,
    leakedObjects: leaks.length,
    detail: problems.length ? `(${faulty}) ${problems.join('; ')}` : '',
  };
}

/** Discovers a drill's calls on fresh pools, then runs every drill scenario on them, one after another. */
export async function runDrillMatrix(
  filter?: string,
): Promise<{ calls: string[]; results: ScenarioResult[] }> {
  const sites = await newDrillSites();
  try {
    const from = sites.destination.test.calls().length;
    const first = await sites.drill();
    if (first.status !== 'passed') throw new Error(`discovery drill ${first.status}: ${first.reason}`);
    const calls = drillCalls(sites, from);
    const results: ScenarioResult[] = [];
    for (const s of drillScenarios(calls).filter((x) => !filter || x.name.includes(filter))) {
      results.push(await runOne(sites, s));
    }
    return { calls, results };
  } finally {
    await sites.close();
  }
}
