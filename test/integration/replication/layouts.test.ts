import { afterEach, describe, expect, it } from 'vitest';
import { cloneRecoveryPoint } from '../../../functions/replication/clone-point.js';
import { Xapi } from '../../../functions/xapi/index.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

async function connect(pool: Sites['source']): Promise<Xapi> {
  return Xapi.connect({
    url: pool.url,
    username: pool.username,
    password: pool.password,
    allowPlainHttp: true,
  });
}

const disk = (sizeMiB: number, seed: number) => ({
  sizeBytes: sizeMiB * MiB,
  data: [{ offset: MiB, length: 2 * MiB, seed }],
});

describe('what a run copies', () => {
  it('handles a disk added and a disk resized between runs (full for those disks only)', async () => {
    sites = await startSites({ vms: [{ name_label: 'app', disks: [disk(32, 1), disk(16, 2)] }] });
    expect((await sites.run()).status).toBe('succeeded');
    const xapi = await connect(sites.source);
    try {
      const vmRef = await xapi.getByUuid('VM', sites.vmUuid('app'));
      const sr = [...(await xapi.getAllRecords('SR')).keys()][0]!;
      const vdi = await xapi.call<string>('VDI.create', {
        name_label: 'added',
        SR: sr,
        virtual_size: 8 * MiB,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      await xapi.call('VBD.create', {
        VM: vmRef,
        VDI: vdi,
        userdevice: '2',
        bootable: false,
        mode: 'RW',
        type: 'Disk',
        empty: false,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
      const added = (await xapi.getRecord('VDI', vdi)).uuid;
      sites.source.test.writeVdi(added, 0, Buffer.alloc(MiB, 9));
      const second = sites.liveDisks('app')[1]!;
      await xapi.callAsync('VDI.resize', await xapi.getByUuid('VDI', second), 24 * MiB);
      sites.source.test.writeVdi(second, 20 * MiB, Buffer.alloc(4096, 7));
    } finally {
      await xapi.logout();
    }
    const run = await sites.run();
    expect(run.status).toBe('succeeded');
    expect(run.vms[0]!.kind).toBe('delta');
    sites.assertReplicasMatchSource('app');
    const rp = sites.recoveryPoints('app')[0]!;
    expect(sites.rpDiskHashes(rp).map(([d]) => d)).toEqual(['0', '1', '2']);
    sites.assertNoLeaks();
  });

  it('replicates a VM without disks and several VMs concurrently; a missing VM fails alone', async () => {
    sites = await startSites({
      vms: [
        { name_label: 'bare' },
        { name_label: 'one', disks: [disk(16, 3)] },
        { name_label: 'two', disks: [disk(16, 4)] },
      ],
      job: { concurrency: 3 },
    });
    const ghost = '00000000-0000-4000-8000-000000000000';
    sites.job.vms = { uuids: [...(sites.job.vms as { uuids: string[] }).uuids, ghost] };
    const run = await sites.run();
    expect(run.status).toBe('partial');
    const byVm = new Map(run.vms.map((v) => [v.vmUuid, v]));
    expect(byVm.get(ghost)).toMatchObject({ status: 'failed', errorCode: 'VM_NOT_FOUND' });
    for (const name of ['bare', 'one', 'two']) {
      expect(byVm.get(sites.vmUuid(name))!.status).toBe('succeeded');
      sites.assertReplicasMatchSource(name);
    }
    expect(sites.recoveryPoints('bare')[0]!.VBDs).toEqual([]);
    sites.assertNoLeaks();
  });
});

describe('recovery points', () => {
  it('keeps exactly `retention` recovery points, newest first; each is halted, start-blocked and clones fine', async () => {
    sites = await startSites({ vms: [{ name_label: 'db', disks: [disk(16, 5)] }], job: { retention: 2 } });
    const [live] = sites.liveDisks('db');
    const hashes: string[] = [];
    for (let i = 0; i < 4; i++) {
      sites.source.test.writeVdi(live!, i * 2 * MiB, Buffer.alloc(4096, i + 1));
      const run = await sites.run();
      expect(run.status).toBe('succeeded');
      hashes.push(sites.rpDiskHashes(sites.recoveryPoints('db')[0]!)[0]![1]);
    }
    const rps = sites.recoveryPoints('db');
    expect(rps).toHaveLength(2);
    expect(rps.map((rp) => sites!.rpDiskHashes(rp)[0]![1])).toEqual([hashes[3], hashes[2]]);
    sites.assertNoLeaks();

    const xapi = await connect(sites.destination);
    try {
      const rpRef = await xapi.getByUuid('VM', rps[0]!.uuid);
      const rp = await xapi.getRecord('VM', rpRef);
      expect(rp.power_state).toBe('Halted');
      expect(rp.blocked_operations.start).toMatch(/clone it/);
      expect(rp.blocked_operations.start_on).toMatch(/clone it/);
      await expect(xapi.callAsync('VM.start', rpRef, false, false)).rejects.toMatchObject({
        code: 'OPERATION_BLOCKED',
      });
      const cloneUuid = await cloneRecoveryPoint(
        xapi,
        rp.uuid,
        { pool: 'b', jobId: 'job1' },
        { name: 'db restored' },
      );
      const cloneRef = await xapi.getByUuid('VM', cloneUuid);
      await xapi.callAsync('VM.start', cloneRef, false, false);
      expect((await xapi.getRecord('VM', cloneRef)).power_state).toBe('Running');
      // The clone is the user's: the next run neither counts nor touches it.
      sites.source.test.writeVdi(live!, 0, Buffer.alloc(512, 0xee));
      expect((await sites.run()).status).toBe('succeeded');
      expect((await xapi.getRecord('VM', cloneRef)).power_state).toBe('Running');
      expect(sites.recoveryPoints('db')).toHaveLength(2);
    } finally {
      await xapi.logout();
    }
  });

  it('goes full with a warning when the base snapshot was deleted by hand', async () => {
    sites = await startSites({ vms: [{ name_label: 'web', disks: [disk(16, 6)] }] });
    await sites.run();
    const xapi = await connect(sites.source);
    try {
      const snap = await xapi.getByUuid('VM', sites.exportedSnapshot('web')!.uuid);
      const rec = await xapi.getRecord('VM', snap);
      const vdis = await Promise.all(rec.VBDs.map(async (vbd) => (await xapi.getRecord('VBD', vbd)).VDI));
      await xapi.call('VM.destroy', snap);
      for (const vdi of vdis) await xapi.call('VDI.destroy', vdi);
    } finally {
      await xapi.logout();
    }
    const run = await sites.run();
    expect(run.vms[0]).toMatchObject({ status: 'succeeded', kind: 'full' });
    expect(run.vms[0]!.warnings!.join()).toMatch(/deleted by hand/);
    sites.assertReplicasMatchSource('web');
    sites.assertNoLeaks();
  });

  it('never uses a recovery point modified by hand as a delta base', async () => {
    sites = await startSites({ vms: [{ name_label: 'web', disks: [disk(16, 7)] }] });
    await sites.run();
    const rp = sites.recoveryPoints('web')[0]!;
    const xapi = await connect(sites.destination);
    try {
      const ref = await xapi.getByUuid('VM', rp.uuid);
      await xapi.call('VM.remove_from_blocked_operations', ref, 'start');
      const vbd = await xapi.getRecord('VBD', (await xapi.getRecord('VM', ref)).VBDs[0]!);
      sites.destination.test.writeVdi(
        (await xapi.getRecord('VDI', vbd.VDI)).uuid,
        0,
        Buffer.alloc(4096, 0x66),
      );
    } finally {
      await xapi.logout();
    }
    const run = await sites.run();
    expect(run.vms[0]).toMatchObject({ status: 'succeeded', kind: 'full' });
    expect(run.vms[0]!.warnings!.join()).toMatch(/modified/);
    sites.assertReplicasMatchSource('web');
  });

  it('forces a full every `fullInterval` runs', async () => {
    sites = await startSites({
      vms: [{ name_label: 'web', disks: [disk(16, 8)] }],
      job: { fullInterval: 2 },
    });
    const kinds: string[] = [];
    for (let i = 0; i < 4; i++) kinds.push((await sites.run()).vms[0]!.kind!);
    expect(kinds).toEqual(['full', 'delta', 'full', 'delta']);
    sites.assertReplicasMatchSource('web');
    sites.assertNoLeaks();
  });
});
