/**
 * The fault matrix: for each step and each XAPI call a run makes, a failure is injected into the
 * second run of a job. Every scenario then checks the same invariants: the previous recovery points
 * are byte-identical, the failure is reported with its XAPI code, and after the next successful run
 * nothing created by the failed run remains on either side.
 */
import type { RunResult } from '../../functions/replication/contract.js';
import { Xapi } from '../../functions/xapi/index.js';
import { MiB, type Sites, type SitesOptions, type StepWrapper, startSites } from '../support/sites.js';

export interface Scenario {
  name: string;
  /** 'failed': the run must fail (and roll back); 'recovers': retries or re-login make it succeed. */
  expect: 'failed' | 'recovers';
  /** Error code the failed run must report (when known). */
  code?: string;
  inject(sites: Sites): StepWrapper | undefined;
  /** Extra time to let an abandoned run's lease expire before the next run. */
  abandon?: boolean;
  /** Sites other than the default ones (storage timing, job settings). */
  sites?: Partial<SitesOptions>;
  /** What run 2's result must also show; returns a problem, or undefined. */
  check?(run2: RunResult): string | undefined;
}

export interface ScenarioResult {
  name: string;
  passed: boolean;
  recoveryPointsIntact: boolean;
  leakedObjects: number;
  detail: string;
}

const STORAGE_ERROR = ['SR_BACKEND_FAILURE_47', '', 'The SR is not available', ''];

/** Methods of a run, per side, as seen by a simulator during one delta run (discovered, not listed). */
export async function discoverCalls(): Promise<{ source: string[]; destination: string[] }> {
  const sites = await newSites();
  try {
    await sites.run();
    const [s0, d0] = [sites.source.test.calls().length, sites.destination.test.calls().length];
    mutate(sites, 1);
    await sites.run();
    const uniq = (calls: string[]) => [...new Set(calls.map((c) => c.replace(/^Async\./, '')))].sort();
    return {
      source: uniq(sites.source.test.calls().slice(s0)),
      destination: uniq(sites.destination.test.calls().slice(d0)),
    };
  } finally {
    await sites.close();
  }
}

async function newSites(extra: Partial<SitesOptions> = {}): Promise<Sites> {
  return startSites({
    ...extra,
    vms: [
      {
        name_label: 'web',
        power_state: 'Running',
        disks: [
          { sizeBytes: 16 * MiB, data: [{ offset: 0, length: 3 * MiB, seed: 11 }] },
          { sizeBytes: 8 * MiB, data: [{ offset: 2 * MiB, length: MiB, seed: 12 }] },
        ],
        vifs: [{ network: 'Pool-wide network' }],
        // Boot state, so the discovered calls include set_bios_strings, VTPM.* and the CD drive.
        firmware: 'uefi',
        secureBoot: true,
        nvram: { 'EFI-variables': Buffer.from('efi vars').toString('base64') },
        bios_strings: { 'system-manufacturer': 'Acme', 'system-serial-number': 'SN-1' },
        vtpm: { contents: Buffer.from('tpm state').toString('base64') },
        cdDrive: true,
      },
    ],
    sourceHosts: 2,
    job: { retention: 2, ...extra.job },
  });
}

function mutate(sites: Sites, round: number): void {
  const [d0, d1] = sites.liveDisks('web');
  sites.source.test.writeVdi(d0!, 6 * MiB + round * 4096, Buffer.alloc(4096, round));
  sites.source.test.writeVdi(d1!, 0, Buffer.alloc(MiB, round + 100));
}

/** Calls every handler twice with the same input: the second result is the one used. */
const duplicateEveryStep: StepWrapper = (_step, handler) => async (input) => {
  await handler(input);
  return handler(input);
};

class Abandoned extends Error {
  override readonly name = 'AbandonedExecution';
}

/** The process dies inside `step` after the work is done but before the result is recorded. */
function crashAfter(target: string): StepWrapper {
  return (step, handler) => async (input) => {
    const out = await handler(input);
    if (step === target) throw new Abandoned(`process died after ${step}`);
    return out;
  };
}

function before(target: string, action: () => void | Promise<void>): StepWrapper {
  return (step, handler) => async (input) => {
    if (step === target) await action();
    return handler(input);
  };
}

export function scenarios(calls: { source: string[]; destination: string[] }): Scenario[] {
  const list: Scenario[] = [];
  for (const side of ['source', 'destination'] as const) {
    for (const method of calls[side]) {
      // Cleanup calls whose failure is tolerated by design (XAPI expires sessions and finished tasks
      // itself); login failures are covered by the bad-credentials tests.
      if (['session.logout', 'task.destroy', 'session.login_with_password'].includes(method)) continue;
      // Without event.from the client polls the task instead.
      const recovers = method === 'event.from';
      list.push({
        name: `${side} ${method} fails`,
        expect: recovers ? 'recovers' : 'failed',
        code: recovers ? undefined : 'SR_BACKEND_FAILURE_47',
        inject: (sites) => {
          sites[side].test.injectFault({ method, count: 1000, error: STORAGE_ERROR });
          return undefined;
        },
      });
    }
  }
  for (const pct of [0.01, 0.5, 0.99]) {
    list.push({
      name: `export cut at ${pct * 100}% on every attempt`,
      expect: 'failed',
      inject: (sites) => {
        for (let nth = 1; nth <= 12; nth++)
          sites.source.test.cutStream({ path: 'export_raw_vdi', afterBytes: Math.floor(pct * 2 * MiB), nth });
        return undefined;
      },
    });
    list.push({
      name: `import cut at ${pct * 100}% once (retried)`,
      expect: 'recovers',
      inject: (sites) => {
        // nth 2: each import is an empty probe (to discover a redirect) followed by the upload.
        sites.destination.test.cutStream({
          path: 'import_raw_vdi',
          afterBytes: Math.floor(pct * 2 * MiB),
          nth: 2,
        });
        return undefined;
      },
    });
  }
  list.push(
    {
      name: 'transient TOO_MANY_PENDING_TASKS on snapshot (retried)',
      expect: 'recovers',
      inject: (sites) => {
        sites.source.test.injectFault({ method: 'VM.snapshot', error: ['TOO_MANY_PENDING_TASKS'] });
        return undefined;
      },
    },
    {
      name: 'sessions expire before stream-delta',
      expect: 'recovers',
      inject: (sites) =>
        before('stream-delta', () => {
          sites.source.test.expireSessions();
          sites.destination.test.expireSessions();
        }),
    },
    {
      name: 'source pool master switches before snapshot-previous',
      expect: 'recovers',
      inject: (sites) => before('snapshot-previous', () => sites.source.test.switchMaster(1)),
    },
    { name: 'every handler invoked twice', expect: 'recovers', inject: () => duplicateEveryStep },
  );
  list.push(...chainScenarios());
  for (const step of ['lock-check', 'snapshot-previous', 'stream-delta']) {
    list.push({
      name: `process dies after ${step}`,
      expect: 'failed',
      abandon: true,
      inject: () => crashAfter(step),
    });
  }
  return list;
}

/** Clones and destroys the recovery point's disks on the destination: each gains a base copy that the
 *  garbage collector will leaf-coalesce after its quiet period — a coalesce pending at clone time. */
async function leaveCoalescePending(sites: Sites): Promise<void> {
  const d = sites.destination;
  const xapi = await Xapi.connect({
    url: d.url,
    username: d.username,
    password: d.password,
    allowPlainHttp: true,
  });
  try {
    for (const [ref, r] of d.test.objects('VDI')) {
      if ((r.other_config as Record<string, string>)['xcr:job'] !== sites.job.id) continue;
      await xapi.call('VDI.destroy', await xapi.callAsync<string>('VDI.clone', ref));
    }
  } finally {
    await xapi.logout();
  }
}

const warned = (run: RunResult, text: string): boolean =>
  (run.vms[0]?.warnings ?? []).some((w) => w.includes(text));

function chainScenarios(): Scenario[] {
  return [
    {
      name: 'coalesce pending on the destination at clone time (waited for)',
      expect: 'recovers',
      sites: {
        destinationStorage: { gcQuietMs: 300, coalesceMs: 300 },
        job: { maxChainDepth: 2, chainWaitSec: 5 },
      },
      inject: (sites) => before('snapshot-previous', () => leaveCoalescePending(sites)),
      check: (run) =>
        warned(run, 'copied in full')
          ? `copied instead of waiting for the coalesce: ${run.vms[0]?.warnings}`
          : run.vms[0]?.chainDepth === 2
            ? undefined
            : `chain depth ${run.vms[0]?.chainDepth}, expected 2 after the coalesce and one clone`,
    },
    {
      name: 'coalesce never comes: the chain at the limit is copied flat',
      expect: 'recovers',
      sites: { job: { maxChainDepth: 2, chainWaitSec: 1 } },
      inject: (sites) => before('snapshot-previous', () => leaveCoalescePending(sites)),
      check: (run) =>
        warned(run, 'at the limit of 2') && run.vms[0]?.chainDepth === 1
          ? undefined
          : `expected a flat copy with a warning: depth ${run.vms[0]?.chainDepth}, ${run.vms[0]?.warnings}`,
    },
    {
      // SM answers 46 while the GC has the leaf paused for a leaf-coalesce; the one transient policy
      // makes the step try again, and the clone then goes through
      name: 'SR_BACKEND_FAILURE_46 (VDI not available) on the clone: retried, a delta as usual',
      expect: 'recovers',
      inject: (sites) => {
        sites.destination.test.injectFault({
          method: 'VDI.clone',
          error: ['SR_BACKEND_FAILURE_46', '', 'The VDI is not available', ''],
        });
        return undefined;
      },
      check: (run) =>
        run.vms[0]?.kind === 'delta' && !warned(run, 'copied in full')
          ? undefined
          : `expected a cloned delta after the retry: ${JSON.stringify(run.vms[0])}`,
    },
    {
      name: 'SR_BACKEND_FAILURE_109 at the chain limit: copied flat, never failed',
      expect: 'recovers',
      sites: { destinationStorage: { chainLimit: 1 } },
      inject: () => undefined,
      check: (run) =>
        warned(run, 'SR_BACKEND_FAILURE_109') && run.vms[0]?.kind === 'delta'
          ? undefined
          : `expected a delta into a flat copy after the 109: ${JSON.stringify(run.vms[0])}`,
    },
  ];
}

function recoveryPointState(sites: Sites): Map<string, string> {
  return new Map(sites.recoveryPoints('web').map((rp) => [rp.uuid, JSON.stringify(sites.rpDiskHashes(rp))]));
}

async function runCatching(sites: Sites, wrap?: StepWrapper): Promise<RunResult | Error> {
  try {
    return await sites.run(undefined, wrap);
  } catch (err) {
    return err as Error;
  }
}

export async function runScenario(s: Scenario): Promise<ScenarioResult> {
  const sites = await newSites(s.sites);
  const problems: string[] = [];
  let intact = true;
  let leaked = 0;
  try {
    const first = await sites.run();
    if (first.status !== 'succeeded') throw new Error(`setup run ${first.status}`);
    mutate(sites, 1);
    const before = recoveryPointState(sites);

    const outcome = await runCatching(sites, s.inject(sites));
    sites.source.test.clearFaults();
    sites.destination.test.clearFaults();
    const status = outcome instanceof Error ? 'failed' : outcome.status;
    if (s.expect === 'failed' && status !== 'failed') problems.push(`run 2 ${status}, expected failed`);
    if (s.expect === 'recovers' && status !== 'succeeded') {
      problems.push(
        `run 2 ${status}: ${outcome instanceof Error ? outcome.message : JSON.stringify(outcome.vms)}`,
      );
    }
    const checked = !(outcome instanceof Error) && s.check?.(outcome);
    if (checked) problems.push(checked);
    if (s.code && !(outcome instanceof Error) && outcome.vms[0]?.errorCode !== s.code) {
      problems.push(`reported ${outcome.vms[0]?.errorCode}, expected ${s.code}`);
    }
    const after = recoveryPointState(sites);
    for (const [uuid, hashes] of before) {
      if (after.get(uuid) !== hashes) {
        intact = false;
        problems.push(`recovery point ${uuid} ${after.has(uuid) ? 'changed' : 'vanished'}`);
      }
    }
    if (s.expect === 'recovers' && status === 'succeeded') sites.assertReplicasMatchSource('web');

    if (s.abandon) sites.advanceClock(2 * 60 * 60 * 1000);
    mutate(sites, 2);
    const third = await sites.run();
    if (third.status !== 'succeeded') problems.push(`run 3 ${third.status}: ${JSON.stringify(third.vms)}`);
    sites.assertReplicasMatchSource('web');
    const leaks = sites.leaks();
    leaked = leaks.length;
    if (leaks.length) problems.push(`leaked: ${leaks.join('; ')}`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    await sites.close();
  }
  return {
    name: s.name,
    passed: problems.length === 0,
    recoveryPointsIntact: intact,
    leakedObjects: leaked,
    detail: problems.join(' | '),
  };
}
