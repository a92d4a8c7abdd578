/**
 * Disks over 2040 GiB (qcow2 on XCP-ng 8.3): a 4 TiB sparse disk replicated in cbt mode, full then
 * delta, verified by hash; the full finds its clusters from the qcow2 export's tables; vhd mode, a
 * missing CBT and a destination SR without qcow2 are refused by name before anything is created.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobConfig } from '../../../functions/config/schema.js';
import { PoolSessions } from '../../../functions/replication/context.js';
import { preflight } from '../../../functions/replication/preflight.js';
import { MiB, type Sites, type SitesOptions, startSites } from '../../support/sites.js';

const KiB = 1024;
const TiB = 1024 * 1024 * MiB;
let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const bigVm = {
  name_label: 'archive',
  power_state: 'Running' as const,
  disks: [
    {
      sizeBytes: 4 * TiB,
      data: [
        { offset: 0, length: 3 * MiB, seed: 1 },
        { offset: 2 * TiB + 5 * MiB, length: 100 * KiB, seed: 2 },
        { offset: 4 * TiB - 64 * KiB, length: 64 * KiB, byte: 0x7e },
      ],
    },
    { sizeBytes: 32 * MiB, data: [{ offset: 0, length: 1 * MiB, byte: 0x5a }] },
  ],
};

async function start(job: Partial<JobConfig>, o: Partial<SitesOptions> = {}) {
  sites = await startSites({
    vms: [bigVm],
    job: { enableCbt: true, transferMode: 'auto', ...job },
    sourceNbdPurpose: 'insecure_nbd',
    sourceSrBytes: 16 * TiB,
    replicaSrBytes: 16 * TiB,
    ...o,
  });
  return sites;
}

async function problemsOf(s: Sites) {
  const sessions = new PoolSessions(s.config, async (p) =>
    p === 'a' ? s.source.password : s.destination.password,
  );
  return preflight(s.config, s.job, sessions).finally(() => sessions.closeAll());
}

const rpFormats = (s: Sites) =>
  s.destination.test
    .objects('VDI')
    .filter(
      ([, r]) =>
        (r.other_config as Record<string, string>)['xcr:role'] === 'replica-disk' && r.managed !== false,
    )
    .map(([, r]) => [Number(r.virtual_size), (r.sm_config as Record<string, string>)['image-format']]);

describe('qcow2 disks over 2040 GiB', () => {
  it('a 4 TiB sparse disk: cbt full from the qcow2 tables, then a cbt delta, verified by hash', async () => {
    const s = await start({});
    expect(await problemsOf(s)).toEqual([]);
    const first = await s.run();
    expect(first.status).toBe('succeeded');
    expect(first.vms[0]!.kind).toBe('full');
    const modes = first.vms[0]!.modes!;
    expect(modes.map((m) => m.mode)).toEqual(['cbt', 'cbt']);
    expect(modes[0]!.reason).toMatch(/qcow2/);
    // only what is allocated travels: 64 KiB clusters of the 4 TiB disk, 2 MiB blocks of the VHD one
    const qcow2Data = 3 * MiB + 2 * 64 * KiB + 64 * KiB;
    expect(first.bytes).toBeGreaterThanOrEqual(qcow2Data + 1 * MiB);
    expect(first.bytes).toBeLessThan(qcow2Data + 2 * MiB + 4 * KiB);
    s.assertReplicasMatchSource('archive');
    expect(rpFormats(s)).toContainEqual([4 * TiB, 'qcow2']);
    s.assertNoLeaks();

    const [d0] = s.liveDisks('archive');
    s.source.test.writeVdi(d0!, 3 * TiB, Buffer.alloc(4096, 9));
    s.source.test.writeVdi(d0!, 1 * MiB, Buffer.alloc(10, 1));
    const second = await s.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('delta');
    expect(second.vms[0]!.modes!.map((m) => m.mode)).toEqual(['cbt', 'cbt']);
    expect(second.bytes).toBeGreaterThanOrEqual(2 * 64 * KiB);
    expect(second.bytes).toBeLessThan(2 * 64 * KiB + 4 * KiB);
    s.assertReplicasMatchSource('archive');
    expect(s.recoveryPoints('archive')).toHaveLength(2);
    s.assertNoLeaks();
  });

  it.each([
    [
      'transferMode vhd',
      { transferMode: 'vhd' as const },
      {},
      'QCOW2_NEEDS_CBT',
      /vhd mode cannot carry it/,
      'transferMode',
    ],
    ['CBT off and enableCbt false', { enableCbt: false }, {}, 'QCOW2_NEEDS_CBT', /enableCbt/, 'enableCbt'],
    [
      'a destination SR without qcow2 (smb)',
      {},
      { replicaSrType: 'smb' },
      'SR_NO_QCOW2',
      /type smb/,
      'destination.sr',
    ],
  ])('refuses %s by name, before anything is created', async (_n, job, o, code, message, field) => {
    const s = await start(job, o);
    const sessions = new PoolSessions(s.config, async (p) =>
      p === 'a' ? s.source.password : s.destination.password,
    );
    const problems = await preflight(s.config, s.job, sessions).finally(() => sessions.closeAll());
    expect(problems).toEqual([
      expect.objectContaining({
        field: `jobs[${s.job.id}].${field}`,
        kind: 'input',
        message: expect.stringMatching(message),
      }),
    ]);
    const before = {
      src: s.source.test.objects('VDI').length,
      dst: s.destination.test.objects('VDI').length,
    };
    const r = await s.run();
    expect(r.vms[0]!.status).toBe('failed');
    expect(r.vms[0]!.errorCode).toBe(code);
    expect(r.vms[0]!.message).toMatch(/disk 0 is qcow2/);
    expect(r.vms[0]!.message).toMatch(message);
    expect(s.source.test.objects('VDI').length).toBe(before.src);
    expect(s.destination.test.objects('VDI').length).toBe(before.dst);
    expect(s.recoveryPoints('archive')).toHaveLength(0);
    expect(s.source.test.calls().filter((c) => /snapshot|VDI.create|enable_cbt/.test(c))).toEqual([]);
    s.assertNoLeaks();
  });
});
