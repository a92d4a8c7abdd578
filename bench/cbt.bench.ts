/**
 * cbt transfer mode vs vhd mode, each against its own pair of simulated pools through the workflow.
 * - cbt.wire_ratio_scattered: 256 scattered 4 KiB guest writes over a 16 GiB disk; bytes the delta
 *   run sends in vhd mode divided by the bytes it sends in cbt mode (same change set).
 * - cbt.throughput_ratio: a sequential 256 MiB delta; (changed bytes / stream-delta time) in cbt mode
 *   divided by the same in vhd mode, best of 3 runs each.
 */
import type { StepHandler } from '../functions/handlers/steps.js';
import { report } from '../test/support/figure.js';
import { MiB, type Sites, startSites } from '../test/support/sites.js';

const GiB = 1024 * MiB;
type Mode = 'vhd' | 'cbt';

async function sitesFor(mode: Mode, sizeBytes: number): Promise<Sites> {
  return startSites({
    vms: [{ name_label: 'vm', disks: [{ sizeBytes, data: [{ offset: 0, length: MiB, seed: 1 }] }] }],
    job: { transferMode: mode, enableCbt: true, cbtChunkMiB: 1024 },
    sourceNbdPurpose: 'insecure_nbd',
    replicaSrBytes: 64 * GiB,
  });
}

async function wireBytes(mode: Mode): Promise<number> {
  const sites = await sitesFor(mode, 16 * GiB);
  try {
    await sites.run();
    const [disk] = sites.liveDisks('vm');
    // deterministic scatter: 256 writes, 64 MiB apart, at varying offsets inside their 2 MiB block
    for (let k = 0; k < 256; k++) {
      const offset = k * 64 * MiB + ((k * 7919) % 512) * 4096;
      sites.source.test.writeVdi(disk!, offset, Buffer.alloc(4096, (k % 255) + 1));
    }
    const result = await sites.run();
    if (result.status !== 'succeeded' || result.vms[0]!.kind !== 'delta')
      throw new Error(`${mode} delta failed`);
    sites.assertReplicasMatchSource('vm');
    return result.bytes;
  } finally {
    await sites.close();
  }
}

function timeStreamDelta(acc: { ms: number }) {
  return (step: string, handler: StepHandler): StepHandler =>
    step !== 'stream-delta'
      ? handler
      : async (input) => {
          const started = performance.now();
          try {
            return await handler(input);
          } finally {
            acc.ms += performance.now() - started;
          }
        };
}

async function throughput(mode: Mode, changed: number): Promise<number> {
  const sites = await sitesFor(mode, 4 * GiB);
  try {
    await sites.run();
    const [disk] = sites.liveDisks('vm');
    let best = 0;
    for (let i = 0; i < 3; i++) {
      const data = Buffer.alloc(changed, i + 1);
      sites.source.test.writeVdi(disk!, GiB, data);
      const acc = { ms: 0 };
      const result = await sites.run(undefined, timeStreamDelta(acc));
      if (result.status !== 'succeeded') throw new Error(`${mode} run failed`);
      best = Math.max(best, changed / 1e6 / (acc.ms / 1000));
    }
    sites.assertReplicasMatchSource('vm');
    return best;
  } finally {
    await sites.close();
  }
}

const vhdWire = await wireBytes('vhd');
const cbtWire = await wireBytes('cbt');
report({
  name: 'cbt.wire_ratio_scattered',
  value: Number((vhdWire / cbtWire).toFixed(2)),
  unit: 'ratio',
  baseline: 'vhd mode bytes on the wire for the same 256 scattered 4 KiB writes (16 GiB disk)',
  vhdBytes: vhdWire,
  cbtBytes: cbtWire,
});

const changed = 256 * MiB;
const vhdRate = await throughput('vhd', changed);
const cbtRate = await throughput('cbt', changed);
report({
  name: 'cbt.throughput_ratio',
  value: Number((cbtRate / vhdRate).toFixed(2)),
  unit: 'ratio',
  baseline: 'vhd mode MB/s on the same sequential 256 MiB delta (stream-delta time, best of 3)',
  vhdMBps: Number(vhdRate.toFixed(1)),
  cbtMBps: Number(cbtRate.toFixed(1)),
});
