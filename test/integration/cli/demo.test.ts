import { describe, expect, it } from 'vitest';
import { runDemo } from '../../../cli/demo-run.js';
import type { SimPool } from '../../../sim/index.js';

/**
 * `npm start`'s demo, shortened (3 cycles 2 s apart): the held cycle makes the next one overlap
 * by construction, and a recovery point that does not match its source makes the demo exit 1.
 */

/** Overwrites the first 4 KiB of the first disk of a recovery point on the destination. */
function corrupt(destination: SimPool, recoveryPointUuid: string): void {
  const vm = destination.test.objects('VM').find(([, r]) => r.uuid === recoveryPointUuid);
  if (!vm) throw new Error(`no recovery point ${recoveryPointUuid}`);
  const vbds = new Set(vm[1].VBDs as string[]);
  const disk = destination.test
    .objects('VBD')
    .filter(([ref, r]) => vbds.has(ref) && r.type === 'Disk')
    .map(([, r]) => destination.test.objects('VDI').find(([ref]) => ref === r.VDI)!)[0]!;
  destination.test.writeVdi(disk[1].uuid as string, 0, Buffer.alloc(4096, 0xee));
}

async function demo(opts: Parameters<typeof runDemo>[0] = {}) {
  const lines: string[] = [];
  const code = await runDemo({
    cycles: 3,
    intervalMs: 2000,
    holdTick: 0,
    write: (l) => lines.push(l),
    ...opts,
  });
  return { code, out: lines.join('\n') };
}

describe('the demo', { timeout: 180_000 }, () => {
  it('skips the cycle that overlaps the held one and verifies every recovery point', async () => {
    const { code, out } = await demo();
    expect(out).toMatch(/^1 +succeeded +full .* yes \(3 VMs\)$/m);
    expect(out).toMatch(/^2 +skipped +- +0\.0 /m);
    expect(out).toMatch(/^3 +succeeded .* yes \(3 VMs\)$/m);
    expect(out).toContain(
      'demo: every recovery point verified; the overlapping cycle was skipped; the drill booted every VM and left nothing.',
    );
    expect(code).toBe(0);
  });

  it('exits 1 when a replica does not verify', async () => {
    const { code, out } = await demo({
      afterRun: async (tick, run, { destination }) => {
        if (tick !== 2) return;
        const vm = run.vms.find((v) => v.status === 'succeeded' && v.recoveryPoint);
        corrupt(destination, vm!.recoveryPoint!);
      },
    });
    expect(out).toMatch(/^3 +succeeded .* NO: disk \d+ differs$/m);
    expect(out).toContain('demo: something did not go as expected (a recovery point did not verify).');
    expect(code).toBe(1);
  });
});
