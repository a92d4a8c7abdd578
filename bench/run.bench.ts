/**
 * Replication run benchmarks, against two simulated pools through the synthesized workflow.
 * - run.overhead_ms_1vm: lock-check + snapshot-previous + commit-or-rollback + finish-run of a delta
 *   run of one VM (median of 5 runs), i.e. the run time excluding the data transfer.
 * - run.overhead_ms_per_vm_50: the same for a run of 50 VMs (concurrency 1), divided by 50.
 * - delta.wire_over_changed: bytes sent to the destination in a delta run divided by
 *   (changed 2 MiB blocks × 2 MiB), with 200 scattered 4 KiB writes over a 4 GiB disk.
 */
import type { StepHandler } from '../functions/handlers/steps.js';
import { report } from '../test/support/figure.js';
import { BLOCK, MiB, type StepWrapper, startSites } from '../test/support/sites.js';

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

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
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

async function overheadFiftyVms(): Promise<number> {
  const vms = Array.from({ length: 50 }, (_, i) => ({
    name_label: `vm-${i}`,
    disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 4096, seed: i }] }],
  }));
  const sites = await startSites({ vms, job: { concurrency: 1 } });
  try {
    await sites.run();
    const totals = new Map<string, number>();
    const run = await sites.run(undefined, timed(totals));
    if (run.status !== 'succeeded') throw new Error(`50-VM run ${run.status}`);
    return overhead(totals) / 50;
  } finally {
    await sites.close();
  }
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
report({
  name: 'run.overhead_ms_per_vm_50',
  value: Math.round(await overheadFiftyVms()),
  unit: 'ms',
  baseline: 'absolute: non-transfer step time of a 50-VM delta run (concurrency 1) / 50',
});
const wire = await wireOverChanged();
report({
  name: 'delta.wire_over_changed',
  value: Number(wire.ratio.toFixed(4)),
  unit: 'ratio',
  baseline: `changed 2 MiB blocks × 2 MiB (${wire.changed} blocks, ${wire.sent} bytes sent)`,
});
