import { afterEach, describe, expect, it } from 'vitest';
import { BLOCK, MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

describe('replication runs against two simulated pools', () => {
  it('copies in full first, then only the changed blocks, across several disks', async () => {
    sites = await startSites({
      vms: [
        {
          name_label: 'web',
          power_state: 'Running',
          disks: [
            { sizeBytes: 64 * MiB, data: [{ offset: 0, length: 5 * MiB, seed: 1 }] },
            { sizeBytes: 32 * MiB, data: [{ offset: 8 * MiB, length: 1 * MiB, byte: 0x5a }] },
          ],
          vifs: [{ network: 'Pool-wide network' }],
        },
      ],
    });
    const first = await sites.run();
    expect(first.status).toBe('succeeded');
    expect(first.vms[0]!.kind).toBe('full');
    sites.assertReplicasMatchSource('web');
    sites.assertNoLeaks();

    const [disk0, disk1] = sites.liveDisks('web');
    sites.source.test.writeVdi(disk0!, 20 * MiB + 100, Buffer.alloc(4096, 1));
    sites.source.test.writeVdi(disk0!, 40 * MiB, Buffer.alloc(3 * MiB, 2)); // spans two blocks
    sites.source.test.writeVdi(disk1!, 0, Buffer.alloc(512, 3));
    const second = await sites.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('delta');
    // 4 changed 2 MiB blocks: each costs a 512-byte bitmap; framing is a few KiB per disk.
    const changed = 4 * BLOCK;
    expect(second.bytes).toBeGreaterThanOrEqual(changed);
    expect(second.bytes).toBeLessThan(changed * 1.01 + 2 * 8192);
    sites.assertReplicasMatchSource('web');
    sites.assertNoLeaks();

    const third = await sites.run();
    expect(third.vms[0]!.kind).toBe('delta');
    expect(third.bytes).toBeLessThan(2 * 8192); // nothing changed: VHD framing only
    sites.assertReplicasMatchSource('web');
    expect(sites.recoveryPoints('web')).toHaveLength(3);
    sites.assertNoLeaks();
  });
});
