/**
 * Replication run benchmarks, against two simulated pools through the synthesized workflow.
 * - run.overhead_ms_1vm: lock-check + snapshot-previous + commit-or-rollback + finish-run of a delta
 *   run of one VM (median of 5 runs), i.e. the run time excluding the data transfer.
 * - run.overhead_ms_per_vm_pool10 / _pool2000: the per-VM steps' time of a 10-VM delta run in pools
 *   of 10 and of 2,000 VMs with 3 snapshots each (both sides), per VM; their ratio; and
 *   run.xapi_calls_per_vm, the per-VM steps' XAPI calls counted from the simulators' call logs.
 * - delta.wire_over_changed: bytes sent to the destination in a delta run divided by
 *   (changed 2 MiB blocks × 2 MiB), with 200 scattered 4 KiB writes over a 4 GiB disk.
 */
import type { StepHandler } from '../functions/handlers/steps.js';
import type { SimVmSpec } from '../sim/types.js';
import { perVmCalls, stepCalls } from '../test/support/call-count.js';
import { median, report } from '../test/support/figure.js';
import { BLOCK, MiB, type StepWrapper, startSites } from '../test/support/sites.js';

/** XCR_BENCH_QUICK=1: small pools and one run, to check the script (the figures mean nothing then). */
const QUICK = process.env.XCR_BENCH_QUICK === '1';
const LARGE_POOL = QUICK ? 100 : 2000;
const RUNS = QUICK ? 1 : 3;
const JOB_VMS = QUICK ? 3 : 10;

function timed(totals: Map<string, number>): StepWrapper {
  return (step: string, handler: StepHandler) => async (input: unknown) => {
    const started = performance.now();
    try {
      return await handler(input);
    } finally {
      totals.set(step, (totals.get(step) ?? 0) + performance.now() - started);
    }
  };
}

const NON_TRANSFER = ['lock-check', 'snapshot-previous', 'commit-or-rollback', 'finish-run'];

function overhead(totals: Map<string, number>): number {
  return NON_TRANSFER.reduce((sum, step) => sum + (totals.get(step) ?? 0), 0);
}

async function overheadOneVm(): Promise<number> {
  const sites = await startSites({
    vms: [
      { name_label: 'vm', disks: [{ sizeBytes: 64 * MiB, data: [{ offset: 0, length: MiB, seed: 1 }] }] },
    ],
  });
  try {
    await sites.run();
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const totals = new Map<string, number>();
      await sites.run(undefined, timed(totals));
      samples.push(overhead(totals));
    }
    return median(samples);
  } finally {
    await sites.close();
  }
}

/** A pool's other VMs: each with one small disk and 3 snapshots, as a pool with history holds. */
function crowd(prefix: string, n: number): SimVmSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    name_label: `${prefix}-${i}`,
    snapshots: 3,
    disks: [{ sizeBytes: 4 * MiB }],
  }));
}

interface PoolOverhead {
  /** per-VM steps (snapshot-previous, commit-or-rollback) of a delta run, per VM, median of the runs */
  perVmMs: number;
  /** lock-check + finish-run of the same run (once per run: the sweep's and retention's listings) */
  perRunMs: number;
  callsPerVm: number;
  records: number;
}

/**
 * A job of JOB_VMS VMs (3 snapshots each) in source and destination pools of `poolVms` VMs with 3
 * snapshots each; a full run, then delta runs, each with a 4 KiB write per VM.
 */
async function poolOverhead(poolVms: number, runs: number): Promise<PoolOverhead> {
  const vms: SimVmSpec[] = Array.from({ length: JOB_VMS }, (_, i) => ({
    name_label: `vm-${i}`,
    snapshots: 3,
    disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 4096, seed: i }] }],
  }));
  const sites = await startSites({
    vms: [...vms, ...crowd('other', Math.max(0, poolVms - JOB_VMS))],
    destinationVms: crowd('dest', poolVms),
    select: vms.map((v) => v.name_label),
    job: { concurrency: 1 },
  });
  try {
    await sites.run();
    const perVm: number[] = [];
    const perRun: number[] = [];
    let callsPerVm = 0;
    for (let r = 0; r < runs; r++) {
      for (const vm of vms)
        sites.source.test.writeVdi(sites.liveDisks(vm.name_label)[0]!, 0, Buffer.alloc(4096, r + 1));
      const totals = new Map<string, number>();
      const calls = stepCalls([sites.source, sites.destination]);
      const run = await sites.run(undefined, (step, h) => timed(totals)(step, calls.wrap(step, h)));
      if (run.status !== 'succeeded') throw new Error(`${poolVms}-VM pool run ${run.status}`);
      perVm.push(sum(totals, ['snapshot-previous', 'commit-or-rollback']) / JOB_VMS);
      perRun.push(sum(totals, ['lock-check', 'finish-run']));
      callsPerVm = perVmCalls(calls, JOB_VMS);
    }
    const records = sites.source.test.objects('VM').length + sites.destination.test.objects('VM').length;
    return { perVmMs: median(perVm), perRunMs: median(perRun), callsPerVm, records };
  } finally {
    await sites.close();
  }
}

function sum(totals: Map<string, number>, steps: string[]): number {
  return steps.reduce((s, step) => s + (totals.get(step) ?? 0), 0);
}

async function wireOverChanged(): Promise<{ ratio: number; changed: number; sent: number }> {
  const size = 4 * 1024 * MiB;
  const sites = await startSites({
    vms: [{ name_label: 'vm', disks: [{ sizeBytes: size, data: [{ offset: 0, length: MiB, seed: 2 }] }] }],
  });
  try {
    await sites.run();
    const [disk] = sites.liveDisks('vm');
    const blocks = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const offset = Math.floor(Math.random() * (size / 4096 - 1)) * 4096;
      blocks.add(Math.floor(offset / BLOCK));
      sites.source.test.writeVdi(disk!, offset, Buffer.alloc(4096, i + 1));
    }
    const run = await sites.run();
    if (run.vms[0]?.kind !== 'delta') throw new Error('expected a delta run');
    return { ratio: run.bytes / (blocks.size * BLOCK), changed: blocks.size, sent: run.bytes };
  } finally {
    await sites.close();
  }
}

report({
  name: 'run.overhead_ms_1vm',
  value: Math.round(await overheadOneVm()),
  unit: 'ms',
  baseline: 'absolute: non-transfer steps of a delta run of 1 VM (median of 5), simulator on loopback',
});
const small = await poolOverhead(10, RUNS);
const large = await poolOverhead(LARGE_POOL, RUNS);
const poolFigure = (name: string, o: PoolOverhead, pool: number) =>
  report({
    name,
    value: Math.round(o.perVmMs),
    unit: 'ms',
    baseline: `absolute: snapshot-previous + commit-or-rollback of a ${JOB_VMS}-VM delta run / ${JOB_VMS} (median of ${RUNS}), pools of ${pool} VMs × 3 snapshots on both sides`,
    perRunMs: Math.round(o.perRunMs),
    vmRecords: o.records,
  });
poolFigure('run.overhead_ms_per_vm_pool10', small, 10);
poolFigure(`run.overhead_ms_per_vm_pool${LARGE_POOL}`, large, LARGE_POOL);
report({
  name: 'run.overhead_pool_ratio',
  value: Number((large.perVmMs / small.perVmMs).toFixed(3)),
  unit: 'ratio',
  baseline: `per-VM overhead in pools of ${LARGE_POOL} VMs / in pools of 10 (target ≤ 1.2)`,
});
report({
  name: 'run.xapi_calls_per_vm',
  value: Number(large.callsPerVm.toFixed(1)),
  unit: 'calls',
  baseline: `XAPI calls (both pools, from the simulators' call logs) of the per-VM steps of a delta run / VM; pools of 10: ${small.callsPerVm.toFixed(1)}`,
});
const wire = await wireOverChanged();
report({
  name: 'delta.wire_over_changed',
  value: Number(wire.ratio.toFixed(4)),
  unit: 'ratio',
  baseline: `changed 2 MiB blocks × 2 MiB (${wire.changed} blocks, ${wire.sent} bytes sent)`,
});
