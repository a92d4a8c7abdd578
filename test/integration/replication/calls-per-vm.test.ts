import { afterEach, describe, expect, it } from 'vitest';
import type { SimVmSpec } from '../../../sim/types.js';
import { isClassListing, isTaskWait, PER_VM_STEPS, perVmCalls, stepCalls } from '../../support/call-count.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const job = (n: number): SimVmSpec[] =>
  Array.from({ length: n }, (_, i) => ({
    name_label: `vm-${i}`,
    disks: [
      { sizeBytes: 8 * MiB, data: [{ offset: 0, length: 4096, seed: i + 1 }] },
      { sizeBytes: 4 * MiB, data: [{ offset: MiB, length: 4096, seed: i + 100 }] },
    ],
    vifs: [{ network: 'Pool-wide network' }],
  }));

/** Unrelated VMs with history: what a real pool holds besides the job's VMs. */
const crowd = (n: number): SimVmSpec[] =>
  Array.from({ length: n }, (_, i) => ({
    name_label: `other-${i}`,
    snapshots: 3,
    disks: [{ sizeBytes: 4 * MiB }],
  }));

/** Per-VM calls of a delta run (the second run), with the calls the per-VM steps made. */
async function deltaRun(extra: number): Promise<{
  perVm: number;
  waits: number;
  listings: string[];
  perRunListings: string[];
  methods: Record<string, number>;
}> {
  const vms = job(3);
  sites = await startSites({
    vms: [...vms, ...crowd(extra)],
    select: vms.map((v) => v.name_label),
    job: { concurrency: 1 },
  });
  expect((await sites.run()).status).toBe('succeeded');
  for (const name of vms.map((v) => v.name_label))
    sites.source.test.writeVdi(sites.liveDisks(name)[0]!, 0, Buffer.alloc(4096, 7));
  // A recovery point's name carries its run's start to the second: a run started within the same
  // second as the previous one finds that point by name too (one more VM.get_record per VM).
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  const calls = stepCalls([sites.source, sites.destination]);
  const run = await sites.run(undefined, calls.wrap);
  expect(run.status).toBe('succeeded');
  expect(run.vms.map((v) => v.kind)).toEqual(['delta', 'delta', 'delta']);
  sites.assertNoLeaks();
  const listings = PER_VM_STEPS.flatMap((step) =>
    (calls.byStep.get(step) ?? []).filter(isClassListing).map((m) => `${step}: ${m}`),
  );
  // once per run, lock-check lists each pool's VMs and VDIs once (sweeps and selection share it; no VBD listing)
  const perRunListings = (calls.byStep.get('lock-check') ?? []).filter(isClassListing).sort();
  // event.from calls wait for a task (VM.snapshot) and their number follows its duration, not the pool
  const perVm = perVmCalls(calls, vms.length, { work: true });
  const waits = perVmCalls(calls, vms.length) - perVm;
  // per step and method, so a difference names the call
  const methods: Record<string, number> = {};
  for (const step of PER_VM_STEPS)
    for (const m of calls.byStep.get(step) ?? [])
      if (!isTaskWait(m)) methods[`${step}: ${m}`] = (methods[`${step}: ${m}`] ?? 0) + 1;
  await sites.close();
  sites = undefined;
  return { perVm, waits, listings, perRunListings, methods };
}

describe('XAPI calls per VM do not depend on the pool size', () => {
  it('recognises class listings', () => {
    expect(isClassListing('VM.get_all_records')).toBe(true);
    expect(isClassListing('VDI.get_all')).toBe(true);
    expect(isClassListing('VBD.get_all_records_where')).toBe(true);
    expect(isClassListing('VM.get_by_uuid')).toBe(false);
    expect(isClassListing('SR.get_all')).toBe(true);
    expect(isClassListing('Async.VBD.get_all_records')).toBe(true);
    expect(isClassListing('VM.get_snapshots')).toBe(false);
    expect(isClassListing('network.get_all_records')).toBe(false);
  });

  it('no per-VM step lists a class, lock-check lists each pool once, and a crowded pool costs no extra call per VM', async () => {
    const small = await deltaRun(0);
    expect(small.listings).toEqual([]);
    const crowded = await deltaRun(40);
    expect(crowded.listings).toEqual([]);
    expect(crowded.methods).toEqual(small.methods);
    expect(crowded.perVm).toBe(small.perVm);
    const onePerPool = ['VDI', 'VDI', 'VM', 'VM'].map((c) => `${c}.get_all_records`);
    expect(crowded.perRunListings).toEqual(onePerPool);
    expect(crowded.waits).toBeLessThanOrEqual(2 * Math.max(small.waits, 1));
  });
});

describe('a delta run reads no record twice in a step', () => {
  it('per VM: each object read once per step, a superseded base destroyed from the record just read', async () => {
    const { perVm, methods } = await deltaRun(0);
    const per = (key: string) => (methods[key] ?? 0) / 3;
    // commit-or-rollback: the snapshot's 2 VBDs (its disks, then the CD drives) and the old base's 2
    // (read to prune it, not again to destroy it, nor as its disks' VBDs)
    expect(per('commit-or-rollback: VBD.get_record')).toBe(4);
    // the VM, the snapshot, the new point after VM.create and the old base, each once
    expect(per('commit-or-rollback: VM.get_record')).toBe(4);
    // the snapshot's VIF: read by the landing check, not again to copy it
    expect(per('commit-or-rollback: VIF.get_record')).toBe(1);
    // snapshot-previous: the VM, the base (pruning, finding the base and the run's own snapshot share
    // it), the new snapshot and the recovery point
    expect(per('snapshot-previous: VM.get_record')).toBe(4);
    // the recovery point's disks are cloned by the refs read with it: only the chain walk looks up
    expect(per('snapshot-previous: VDI.get_by_uuid')).toBe(2);
    // 131 before these reads were shared (2 disks, 1 VIF, sessions included, task waits not)
    expect(perVm).toBeLessThanOrEqual(119);
  });
});

describe('a first run reads back nothing it has just written', () => {
  it('commit builds the recovery point without re-reading it; snapshot-previous finds the VM once and walks no new chain', async () => {
    const vms = job(3);
    sites = await startSites({ vms, select: vms.map((v) => v.name_label), job: { concurrency: 1 } });
    const src = stepCalls([sites.source]);
    const dst = stepCalls([sites.destination]);
    const run = await sites.run(undefined, (step, handler) => src.wrap(step, dst.wrap(step, handler)));
    expect(run.status).toBe('succeeded');
    sites.assertNoLeaks();
    const count = (calls: typeof src, step: string, method: string) =>
      (calls.byStep.get(step) ?? []).filter((m) => m === method).length / vms.length;
    const commit = 'commit-or-rollback';
    const snapshot = 'snapshot-previous';
    const table: [typeof src, string, string, number][] = [
      // the new recovery point has no devices yet: none of its VBDs or VIFs is read back; its
      // record is read once, after VM.create (for its uuid), and not again before it is complete
      [dst, commit, 'VBD.get_record', 0],
      [dst, commit, 'VIF.get_record', 0],
      [dst, commit, 'VM.get_record', 1],
      [dst, commit, 'VBD.create', 2],
      [dst, commit, 'VIF.create', 1],
      // the source VM and its snapshot, each looked up and read once (finding older bases uses
      // the snapshot as marked exported)
      [src, commit, 'VM.get_by_uuid', 2],
      [src, commit, 'VM.get_record', 2],
      // the snapshot's VBDs and VIF, each read once (its disks, the CD drives; the landing check, the VIFs)
      [src, commit, 'VBD.get_record', 2],
      [src, commit, 'VIF.get_record', 1],
      // no base was pruned, so the VM is not looked up again; each new target's record is read once
      [src, snapshot, 'VM.get_by_uuid', 1],
      [dst, snapshot, 'VDI.get_record', 2],
      // a full's target is a new VDI: its chain is not walked
      [dst, snapshot, 'VDI.get_sm_config', 0],
    ];
    const label = (calls: typeof src, step: string, method: string) =>
      `${calls === src ? 'source' : 'destination'} ${step} ${method}`;
    const got = Object.fromEntries(table.map(([c, step, m]) => [label(c, step, m), count(c, step, m)]));
    const want = Object.fromEntries(table.map(([c, step, m, n]) => [label(c, step, m), n]));
    expect(got).toEqual(want);
  });
});
