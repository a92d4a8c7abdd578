import { randomBytes } from 'node:crypto';
import { generate } from 'selfsigned';
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

function vm(data: { offset: number; length: number; seed?: number; byte?: number }[] = []) {
  return {
    name_label: 'db',
    power_state: 'Running' as const,
    disks: [
      { sizeBytes: 64 * MiB, data: [{ offset: 0, length: 5 * MiB, seed: 1 }, ...data] },
      { sizeBytes: 32 * MiB, data: [{ offset: 8 * MiB, length: 1 * MiB, byte: 0x5a }] },
    ],
  };
}

async function start(job: Partial<JobConfig>, purpose: 'insecure_nbd' | 'none' = 'insecure_nbd') {
  sites = await startSites({
    vms: [vm()],
    job: { enableCbt: true, transferMode: 'cbt', ...job },
    ...(purpose === 'none' ? {} : { sourceNbdPurpose: purpose }),
  });
  return sites;
}

function modes(result: { vms: { modes?: { mode: string; reason?: string }[] }[] }) {
  return result.vms[0]!.modes!.map((m) => m.mode);
}

describe('cbt transfer mode (CBT + NBD + chunked raw import)', () => {
  it('copies allocated blocks in full, then only changed 64 KiB extents, run after run', async () => {
    const s = await start({});
    const first = await s.run();
    expect(first.status).toBe('succeeded');
    expect(first.vms[0]!.kind).toBe('full');
    expect(modes(first)).toEqual(['cbt', 'cbt']);
    // a full sends allocated 2 MiB blocks only: 3 blocks for 5 MiB, 1 for the second disk
    expect(first.bytes).toBeGreaterThanOrEqual(4 * 2 * MiB);
    expect(first.bytes).toBeLessThan(4 * 2 * MiB + 4 * KiB);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();

    const [d0, d1] = s.liveDisks('db');
    // scattered small writes: 20 writes of 4 KiB, each in its own 64 KiB region
    for (let k = 0; k < 20; k++) s.source.test.writeVdi(d0!, k * 3 * MiB + 4096, Buffer.alloc(4096, k + 1));
    s.source.test.writeVdi(d1!, 0, Buffer.alloc(512, 3));
    const second = await s.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('delta');
    const changed = 21 * 64 * KiB;
    expect(second.bytes).toBeGreaterThanOrEqual(changed);
    expect(second.bytes).toBeLessThan(changed + 22 * CHUNK_HEADER + 2 * CHUNK_HEADER);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();

    const third = await s.run();
    expect(third.vms[0]!.kind).toBe('delta');
    expect(third.bytes).toBe(0);
    s.assertReplicasMatchSource('db');
    expect(s.recoveryPoints('db')).toHaveLength(3);
    s.assertNoLeaks();
  });

  it('cuts a disk into resumable chunks; a chunk failing mid-disk is sent again and the run completes', async () => {
    const s = await start({ cbtChunkMiB: 16 });
    await s.run();
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 10 * MiB, Buffer.alloc(40 * MiB, 9)); // 40 MiB: 3 chunks of ≤ 16 MiB
    // each chunked import is a probe PUT + the upload: 4 = the 2nd upload, 6 = its first resend
    s.destination.test.cutStream({ path: 'import_raw_vdi', afterBytes: 5 * MiB, nth: 4 });
    s.destination.test.cutStream({ path: 'import_raw_vdi', afterBytes: 1 * MiB, nth: 6 });
    const invocations: unknown[] = [];
    const result = await s.run(undefined, (step, handler) =>
      step === 'stream-delta'
        ? async (input) => {
            invocations.push(input);
            return handler(input);
          }
        : handler,
    );
    expect(result.status).toBe('succeeded');
    expect(result.vms[0]!.kind).toBe('delta');
    // 3 chunks of disk 0 + disk 1 (nothing changed), each in its own invocation
    expect(invocations.length).toBeGreaterThanOrEqual(4);
    expect(result.bytes).toBeGreaterThanOrEqual(40 * MiB);
    expect(result.bytes).toBeLessThan(40 * MiB + 64 * KiB);
    const retried = s.logs.filter((l) => l.message === 'cbt upload failed; sending it again');
    expect(retried.length).toBe(2);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('a delta of many 4 MiB chunks into a destination slower than the source arrives byte for byte', async () => {
    // The read buffers are reused once the upload's socket has written them; the throttled import
    // keeps each chunk in the socket for a while, so a buffer refilled too early would reach the
    // replica as another chunk's bytes. Random data: no two chunks alike.
    const s = await start({});
    await s.run();
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 8 * MiB, randomBytes(48 * MiB));
    s.destination.test.throttle(96 * MiB);
    const result = await s.run();
    expect(result.status).toBe('succeeded');
    expect(result.vms[0]!.kind).toBe('delta');
    expect(result.bytes).toBeGreaterThanOrEqual(48 * MiB);
    s.assertReplicasMatchSource('db');
  });

  it('auto falls back to vhd with the reason when CBT was disabled between runs', async () => {
    const s = await start({ transferMode: 'auto', enableCbt: false });
    const first = await s.run();
    expect(modes(first)).toEqual(['vhd', 'vhd']);
    expect(first.vms[0]!.modes![0]!.reason).toMatch(/CBT is not enabled/);
    s.assertReplicasMatchSource('db');

    const x = await s.source.test.objects('VDI');
    const live = new Set(s.liveDisks('db'));
    const refs = x.filter(([, r]) => live.has(r.uuid as string)).map(([ref]) => ref);
    const { Xapi } = await import('../../../functions/xapi/index.js');
    const api = await Xapi.connect({
      url: s.source.url,
      username: s.source.username,
      password: s.source.password,
      allowPlainHttp: true,
    });
    for (const ref of refs) await api.call('VDI.enable_cbt', ref);
    const second = await s.run();
    // the base snapshot has no CBT log: still vhd, a delta
    expect(modes(second)).toEqual(['vhd', 'vhd']);
    expect(second.vms[0]!.modes![0]!.reason).toMatch(/base snapshot/);
    expect(second.vms[0]!.kind).toBe('delta');
    const third = await s.run();
    expect(modes(third)).toEqual(['cbt', 'cbt']);
    s.assertReplicasMatchSource('db');
    for (const ref of refs) await api.call('VDI.disable_cbt', ref);
    await api.logout();
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 30 * MiB, Buffer.alloc(4096, 4));
    const fourth = await s.run();
    expect(fourth.status).toBe('succeeded');
    expect(modes(fourth)).toEqual(['vhd', 'vhd']);
    expect(fourth.vms[0]!.modes![0]!.reason).toMatch(/auto fell back to vhd: CBT is not enabled/);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('NBD unreachable: auto uses vhd; cbt fails the VM cleanly and keeps the last recovery point', async () => {
    const s = await start({ transferMode: 'auto' }, 'none');
    const first = await s.run();
    expect(first.status).toBe('succeeded');
    expect(modes(first)).toEqual(['vhd', 'vhd']);
    expect(first.vms[0]!.modes![0]!.reason).toMatch(/NBD is not usable/);
    s.assertReplicasMatchSource('db');
    const rp = s.recoveryPoints('db')[0]!;
    const hashes = s.rpDiskHashes(rp);

    const strict = { ...s.job, transferMode: 'cbt' as const };
    Object.assign(s.job, strict);
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 0, Buffer.alloc(4096, 8));
    const second = await s.run();
    expect(second.status).toBe('failed');
    expect(second.vms[0]!.errorCode).toBe('CBT_UNAVAILABLE');
    expect(s.recoveryPoints('db')[0]!.uuid).toBe(rp.uuid);
    expect(s.rpDiskHashes(s.recoveryPoints('db')[0]!)).toEqual(hashes);
    s.assertNoLeaks();
  });

  it('reads over TLS when the NBD network has purpose nbd, verifying the certificate get_nbd_info returns', async () => {
    const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    sites = await startSites({
      vms: [vm()],
      job: { enableCbt: true, transferMode: 'cbt' },
      sourceNbdPurpose: 'nbd',
      sourceTls: { cert: pems.cert, key: pems.private },
    });
    const first = await sites.run();
    expect(first.status).toBe('succeeded');
    expect(modes(first)).toEqual(['cbt', 'cbt']);
    const [d0] = sites.liveDisks('db');
    sites.source.test.writeVdi(d0!, 7 * MiB, Buffer.alloc(4096, 2));
    const second = await sites.run();
    expect(second.vms[0]!.kind).toBe('delta');
    expect(second.bytes).toBe(64 * KiB + 2 * CHUNK_HEADER);
    sites.assertReplicasMatchSource('db');
    sites.assertNoLeaks();
  });

  it('cbtDestroySnapshotData leaves the base as CBT metadata and deltas still work from it', async () => {
    const s = await start({ cbtDestroySnapshotData: true });
    await s.run();
    const vdis = () => s.source.test.objects('VDI').map(([, r]) => r);
    const base = s.exportedSnapshot('db')!;
    const meta = vdis().filter((r) => r.type === 'cbt_metadata');
    expect(meta).toHaveLength(2);
    const [d0] = s.liveDisks('db');
    s.source.test.writeVdi(d0!, 33 * MiB, Buffer.alloc(8192, 6));
    const second = await s.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('delta');
    expect(second.bytes).toBeLessThan(2 * 64 * KiB);
    expect(s.exportedSnapshot('db')!.uuid).not.toBe(base.uuid);
    // content: the recovery point equals the live disk at the snapshot (the snapshot has no data now)
    const rp = s.recoveryPoints('db')[0]!;
    const live = s.liveDisks('db').map((u, i) => [String(i), s.source.test.hashVdi(u)]);
    expect(s.rpDiskHashes(rp)).toEqual(live);
    s.assertNoLeaks();
  });
});

/**
 * A base CBT cannot diff from heals itself (docs/architecture.md, step 2): the disk travels in full
 * over NBD with a warning, the new snapshot becomes the base, the next run is a cbt delta. Any other
 * refusal of VDI.list_changed_blocks keeps failing the VM as before.
 */
async function setCbt(s: Sites, vdiUuids: string[], on: boolean) {
  await withXapi(s.source, async (x) => {
    for (const uuid of vdiUuids)
      await x.call(on ? 'VDI.enable_cbt' : 'VDI.disable_cbt', await x.getByUuid('VDI', uuid));
  });
}

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
    expect(s.logs.filter((l) => l.message === warning)).toHaveLength(1);
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
