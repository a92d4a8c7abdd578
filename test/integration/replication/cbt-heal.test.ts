/**
 * A cbt job whose base CBT cannot diff from heals itself (docs/architecture.md, step 2): the disk
 * travels in full over NBD with a warning, the new snapshot becomes the base, the next run is a
 * cbt delta. Any other refusal of VDI.list_changed_blocks keeps failing the VM as before.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobConfig } from '../../../functions/config/schema.js';
import { withXapi } from '../../support/failover.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const KiB = 1024;
const CHUNK_HEADER = 12;

async function start(job: Partial<JobConfig>) {
  sites = await startSites({
    vms: [
      {
        name_label: 'db',
        power_state: 'Running' as const,
        disks: [
          { sizeBytes: 64 * MiB, data: [{ offset: 0, length: 5 * MiB, seed: 1 }] },
          { sizeBytes: 32 * MiB, data: [{ offset: 8 * MiB, length: 1 * MiB, byte: 0x5a }] },
        ],
      },
    ],
    job: { enableCbt: true, transferMode: 'cbt', ...job },
    sourceNbdPurpose: 'insecure_nbd',
  });
  return sites;
}

async function setCbt(s: Sites, vdiUuids: string[], on: boolean) {
  await withXapi(s.source, async (x) => {
    for (const uuid of vdiUuids)
      await x.call(on ? 'VDI.enable_cbt' : 'VDI.disable_cbt', await x.getByUuid('VDI', uuid));
  });
}

const modes = (r: { vms: { modes?: { mode: string }[] }[] }) => r.vms[0]!.modes!.map((m) => m.mode);

describe('cbt job whose base CBT cannot diff from', () => {
  it('CBT turned off and on on a disk: that disk goes in full over NBD with a warning, then cbt deltas again', async () => {
    const s = await start({});
    const first = await s.run();
    expect(first.status).toBe('succeeded');
    const [d0, d1] = s.liveDisks('db');
    // the operator turns CBT off and on again: the base and the new snapshot both have
    // cbt_enabled, but no CBT log chain joins them (SM: "Source and target VDI are unrelated")
    await setCbt(s, [d0!], false);
    s.source.test.writeVdi(d0!, 20 * MiB, Buffer.alloc(4096, 7));
    await setCbt(s, [d0!], true);
    s.source.test.writeVdi(d1!, 0, Buffer.alloc(512, 3));
    const second = await s.run();
    expect(second.status).toBe('succeeded');
    expect(modes(second)).toEqual(['cbt', 'cbt']);
    const warning = second.vms[0]!.warnings!.find((w) => w.startsWith('the base snapshot of disk 0'));
    expect(warning).toMatch(
      /^the base snapshot of disk 0 has no CBT chain to the new snapshot .*Source and target VDI are unrelated.*: sent in full over NBD; the next run is a delta again$/,
    );
    expect(second.vms[0]!.modes![0]!.reason).toBe(warning);
    expect(second.vms[0]!.modes![1]!.reason).toMatch(/CBT and NBD are usable/);
    // disk 0 whole (its allocated 2 MiB blocks: 3 for the first 5 MiB, 1 at 20 MiB), disk 1 one extent
    expect(second.bytes).toBeGreaterThanOrEqual(4 * 2 * MiB + 64 * KiB);
    expect(second.bytes).toBeLessThan(4 * 2 * MiB + 64 * KiB + 16 * CHUNK_HEADER);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();

    s.source.test.writeVdi(d0!, 40 * MiB, Buffer.alloc(4096, 9));
    const third = await s.run();
    expect(third.status).toBe('succeeded');
    expect(third.vms[0]!.kind).toBe('delta');
    expect(modes(third)).toEqual(['cbt', 'cbt']);
    expect(third.vms[0]!.warnings ?? []).toEqual([]);
    expect(third.bytes).toBe(64 * KiB + 2 * CHUNK_HEADER);
    s.assertReplicasMatchSource('db');
    expect(s.recoveryPoints('db')).toHaveLength(3);
    s.assertNoLeaks();
  });

  it('a base taken before CBT was on: every disk goes in full over NBD, then cbt deltas', async () => {
    const s = await start({ transferMode: 'vhd', enableCbt: false });
    expect((await s.run()).status).toBe('succeeded');
    Object.assign(s.job, { transferMode: 'cbt', enableCbt: true });
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 30 * MiB, Buffer.alloc(4096, 5));
    const second = await s.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('full');
    expect(modes(second)).toEqual(['cbt', 'cbt']);
    expect(second.vms[0]!.warnings).toEqual(
      expect.arrayContaining(
        [0, 1].map((n) =>
          expect.stringMatching(
            new RegExp(
              `^the base snapshot of disk ${n} has no CBT \\(CBT was off on the disk when it was taken\\): sent in full over NBD`,
            ),
          ),
        ),
      ),
    );
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();

    const third = await s.run();
    expect(third.vms[0]!.kind).toBe('delta');
    expect(modes(third)).toEqual(['cbt', 'cbt']);
    expect(third.bytes).toBe(0);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('any other refusal of VDI.list_changed_blocks fails the VM as before and keeps the last recovery point', async () => {
    const s = await start({});
    await s.run();
    const rp = s.recoveryPoints('db')[0]!;
    const hashes = s.rpDiskHashes(rp);
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 0, Buffer.alloc(4096, 8));
    s.source.test.injectFault({
      method: 'VDI.list_changed_blocks',
      count: 100,
      error: ['RBAC_PERMISSION_DENIED', 'VDI.list_changed_blocks', 'the role lacks it'],
    });
    const second = await s.run();
    expect(second.status).toBe('failed');
    expect(second.vms[0]!.errorCode).toBe('RBAC_PERMISSION_DENIED');
    expect(s.recoveryPoints('db')[0]!.uuid).toBe(rp.uuid);
    expect(s.rpDiskHashes(s.recoveryPoints('db')[0]!)).toEqual(hashes);
    s.assertNoLeaks();
    s.source.test.clearFaults();
    const third = await s.run();
    expect(third.status).toBe('succeeded');
    expect(third.vms[0]!.kind).toBe('delta');
    expect(third.bytes).toBe(64 * KiB + 2 * CHUNK_HEADER);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });
});
