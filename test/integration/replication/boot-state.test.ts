/**
 * A UEFI Secure Boot VM with a vTPM, NVRAM, SMBIOS strings and 3 VIFs on 2 networks: each recovery
 * point and each `xcr clone` of it carries the source snapshot's boot state, field by field as
 * CARRIED_FIELDS says, and bad network maps or a pool without vTPM fail before anything is created.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CARRIED_FIELDS, type Carry } from '../../../functions/replication/boot-fields.js';
import { cloneRecoveryPoint } from '../../../functions/replication/clone-point.js';
import { PoolSessions } from '../../../functions/replication/context.js';
import { preflight } from '../../../functions/replication/preflight.js';
import { Xapi } from '../../../functions/xapi/index.js';
import { genericBiosStrings } from '../../../sim/api/firmware.js';
import type { SimPool, SimVmSpec } from '../../../sim/types.js';
import { MiB, type Sites, type SitesOptions, startSites } from '../../support/sites.js';

type Rec = Record<string, unknown> & { uuid: string };
const b64 = (s: string) => Buffer.from(s).toString('base64');
const MACS = ['02:11:22:33:44:01', '02:11:22:33:44:02', '02:11:22:33:44:03'];

const win11: SimVmSpec = {
  name_label: 'win11',
  power_state: 'Running',
  vcpus: 4,
  memoryBytes: 4 * 1024 * MiB,
  firmware: 'uefi',
  secureBoot: true,
  nvram: { 'EFI-variables': b64('PK KEK db dbx Boot0001 v1'), 'EFI-variables-on-boot': 'persist' },
  bios_strings: { ...genericBiosStrings(), 'system-manufacturer': 'Acme', 'system-serial-number': 'SN-42' },
  vtpm: { contents: b64('swtpm state v1') },
  has_vendor_device: false,
  cdDrive: true,
  xenstore_data: { 'vm-data/role': 'dc' },
  disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 3 * MiB, seed: 7 }] }],
  vifs: [
    { network: 'Pool-wide network', mac: MACS[0], mtu: 9000, locking_mode: 'unlocked' },
    { network: 'Pool-wide network', mac: MACS[1] },
    { network: 'Storage', mac: MACS[2], mtu: 9000 },
  ],
};

const twoNetworks: Partial<SitesOptions> = {
  sourceNetworks: ['Pool-wide network', 'Storage'],
  destinationNetworks: ['DR LAN', 'DR storage'],
};

function objects(pool: SimPool, cls: 'VM' | 'VIF' | 'VBD' | 'VTPM' | 'network'): Map<string, Rec> {
  return new Map(pool.test.objects(cls) as [string, Rec][]);
}
const refOf = (pool: SimPool, uuid: string) => [...objects(pool, 'VM')].find(([, r]) => r.uuid === uuid)![0];

/** The one VTPM's contents of a VM (and that there is exactly one). */
function vtpmContents(pool: SimPool, vm: Rec): string {
  expect(vm.VTPMs as string[]).toHaveLength(1);
  return pool.test.vtpmContents((vm.VTPMs as string[])[0]!);
}

function vifs(pool: SimPool, vm: Rec) {
  const all = objects(pool, 'VIF');
  const nets = objects(pool, 'network');
  return (vm.VIFs as string[])
    .map((r) => all.get(r)!)
    .map((v) => ({
      device: v.device,
      MAC: v.MAC,
      MTU: v.MTU,
      locking_mode: v.locking_mode,
      network: nets.get(v.network as string)!.name_label,
    }))
    .sort((a, b) => Number(a.device) - Number(b.device));
}

function compare(copy: Rec, snapshot: Rec, column: 'recoveryPoint' | 'clone'): void {
  const checked: Carry[] = [];
  for (const f of CARRIED_FIELDS) {
    const rule = f[column];
    checked.push(rule);
    if (rule === 'equal') expect(copy[f.field], `${column} ${f.field}`).toEqual(snapshot[f.field]);
    if (rule === 'differs') expect(copy[f.field], `${column} ${f.field}`).not.toEqual(snapshot[f.field]);
  }
  expect(checked).toContain('equal');
}

describe('a UEFI Secure Boot VM with a vTPM', () => {
  let sites: Sites;
  let xapi: Xapi;
  beforeAll(async () => {
    sites = await startSites({
      vms: [win11],
      ...twoNetworks,
      job: {
        destination: {
          pool: 'b',
          sr: { name: 'Replica storage' },
          networkMap: { '*': 'DR LAN', Storage: 'DR storage' },
        },
      },
    });
    const d = sites.destination;
    xapi = await Xapi.connect({
      url: d.url,
      username: d.username,
      password: d.password,
      allowPlainHttp: true,
    });
  });
  afterAll(async () => {
    await xapi?.logout();
    await sites?.close();
  });

  /** Checks the newest recovery point and a clone of it against the exported snapshot. */
  async function checkNewest(expected: { nvram: string; tpm: string; vifs: number }) {
    const snap = sites.exportedSnapshot('win11')! as Rec;
    const rp = sites.recoveryPoints('win11')[0]! as Rec;
    expect(rp.other_config).toMatchObject({ 'xcr:source-snapshot': snap.uuid });
    compare(rp, snap, 'recoveryPoint');
    expect((rp.NVRAM as Record<string, string>)['EFI-variables']).toBe(expected.nvram);
    expect(rp.bios_strings).toEqual(win11.bios_strings);
    const srcSnapRec = objects(sites.source, 'VM').get(refOf(sites.source, snap.uuid))!;
    expect(vtpmContents(sites.destination, rp)).toBe(vtpmContents(sites.source, srcSnapRec));
    expect(vtpmContents(sites.destination, rp)).toBe(expected.tpm);
    const rpVifs = vifs(sites.destination, rp);
    expect(rpVifs).toHaveLength(expected.vifs);
    expect(rpVifs.slice(0, 3)).toEqual([
      { device: '0', MAC: MACS[0], MTU: 9000, locking_mode: 'unlocked', network: 'DR LAN' },
      { device: '1', MAC: MACS[1], MTU: 1500, locking_mode: 'network_default', network: 'DR LAN' },
      { device: '2', MAC: MACS[2], MTU: 9000, locking_mode: 'network_default', network: 'DR storage' },
    ]);
    const vbds = objects(sites.destination, 'VBD');
    const cd = (rp.VBDs as string[]).map((r) => vbds.get(r)!).filter((v) => v.type === 'CD');
    expect(cd.map((v) => [v.userdevice, v.empty, v.mode])).toEqual([['3', true, 'RO']]);

    const cloneUuid = await cloneRecoveryPoint(xapi, rp.uuid, { pool: 'b', jobId: sites.job.id });
    const clone = objects(sites.destination, 'VM').get(refOf(sites.destination, cloneUuid))!;
    compare(clone, snap, 'clone');
    expect(clone.blocked_operations).toEqual({});
    expect(vtpmContents(sites.destination, clone)).toBe(expected.tpm);
    expect(vifs(sites.destination, clone)).toEqual(rpVifs);
    const fresh = await cloneRecoveryPoint(
      xapi,
      rp.uuid,
      { pool: 'b', jobId: sites.job.id },
      { newMacs: true },
    );
    const freshVifs = vifs(
      sites.destination,
      objects(sites.destination, 'VM').get(refOf(sites.destination, fresh))!,
    );
    expect(freshVifs.map((v) => v.MAC).filter((m) => MACS.includes(m as string))).toEqual([]);
    expect(freshVifs.map((v) => v.network)).toEqual(rpVifs.map((v) => v.network));
    for (const uuid of [cloneUuid, fresh]) await xapi.callAsync('VM.destroy', refOf(sites.destination, uuid));
  }

  it('full run, guest changes, delta run: every recovery point and its clone boot like the source', async () => {
    const first = await sites.run();
    expect(first.status).toBe('succeeded');
    await checkNewest({ nvram: win11.nvram!['EFI-variables']!, tpm: b64('swtpm state v1'), vifs: 3 });
    const rp1 = sites.recoveryPoints('win11')[0]!;

    // The guest runs on: disk blocks, a UEFI variable (varstored), the TPM state; a NIC is added.
    const src = await Xapi.connect({
      url: sites.source.url,
      username: sites.source.username,
      password: sites.source.password,
      allowPlainHttp: true,
    });
    const vm = refOf(sites.source, sites.vmUuid('win11'));
    sites.source.test.writeVdi(sites.liveDisks('win11')[0]!, 5 * MiB, Buffer.alloc(4096, 9));
    await src.call('VM.set_NVRAM_EFI_variables', vm, b64('PK KEK db dbx Boot0001 Boot0002 v2'));
    const [tpm] = (await src.getRecord('VM', vm)).VTPMs;
    await src.call('VTPM.set_contents', tpm, b64('swtpm state v2 (BitLocker sealed)'));
    const [net] = [...(await src.getAllRecords('network'))].find(([, n]) => n.name_label === 'Storage')!;
    await src.call('VIF.create', {
      device: '3',
      network: net,
      VM: vm,
      MAC: '02:11:22:33:44:04',
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
    await src.call('VM.set_memory_limits', vm, 1024 * MiB, 6 * 1024 * MiB, 6 * 1024 * MiB, 6 * 1024 * MiB);
    await src.logout();

    const second = await sites.run();
    expect(second.status).toBe('succeeded');
    expect(second.vms[0]!.kind).toBe('delta');
    await checkNewest({
      nvram: b64('PK KEK db dbx Boot0001 Boot0002 v2'),
      tpm: b64('swtpm state v2 (BitLocker sealed)'),
      vifs: 4,
    });
    const rp2 = sites.recoveryPoints('win11')[0]!;
    expect(rp2.memory_static_max).toBe(6 * 1024 * MiB);

    // The earlier recovery point is untouched.
    const rp1Now = objects(sites.destination, 'VM').get(refOf(sites.destination, rp1.uuid))!;
    expect(rp1Now.NVRAM).toEqual(rp1.NVRAM);
    expect(vtpmContents(sites.destination, rp1Now)).toBe(b64('swtpm state v1'));
    expect(rp1Now.VIFs as string[]).toHaveLength(3);
    expect(rp1Now.memory_static_max).toBe(4 * 1024 * MiB);
    sites.assertReplicasMatchSource('win11');
    sites.assertNoLeaks();
  });
});

describe('bad input fails before anything is created', () => {
  async function attempt(o: Partial<SitesOptions>) {
    const sites = await startSites({ vms: [win11], ...twoNetworks, ...o });
    try {
      const sessions = new PoolSessions(sites.config, async (pool) =>
        pool === 'a' ? sites.source.password : sites.destination.password,
      );
      const problems = await preflight(sites.config, sites.job, sessions).finally(() => sessions.closeAll());
      const vmsBefore = [sites.source.test.objects('VM').length, sites.destination.test.objects('VM').length];
      const run = await sites.run();
      const vmsAfter = [sites.source.test.objects('VM').length, sites.destination.test.objects('VM').length];
      const vdis = sites.destination.test.objects('VDI').length;
      return { problems, run, vmsBefore, vmsAfter, vdis };
    } finally {
      await sites.close();
    }
  }
  const destination = (extra: object) => ({
    destination: { pool: 'b', sr: { name: 'Replica storage' }, ...extra },
  });

  it('a source network the map leaves out', async () => {
    const r = await attempt({ job: destination({ networkMap: { 'Pool-wide network': 'DR LAN' } }) });
    expect(r.problems).toEqual([
      expect.objectContaining({
        field: 'jobs[job1].destination.networkMap',
        message: expect.stringMatching(
          /source network "Storage" \([0-9a-f-]{36}\) maps to no destination network/,
        ),
      }),
    ]);
    expect(r.run.vms[0]).toMatchObject({ status: 'failed', errorCode: 'NETWORK_UNMAPPED' });
    expect(r.vmsAfter).toEqual(r.vmsBefore);
    expect(r.vdis).toBe(0);
  });

  it('a map naming a destination network that does not exist', async () => {
    const r = await attempt({ job: destination({ networkMap: { '*': 'DR LAN', Storage: 'DR SAN' } }) });
    expect(r.problems.map((p) => p.message)).toEqual([
      expect.stringContaining('networkMap["Storage"]: no destination network has uuid or name "DR SAN"'),
    ]);
    expect(r.run.vms[0]).toMatchObject({ status: 'failed', errorCode: 'NETWORK_UNMAPPED' });
    expect(r.vmsAfter).toEqual(r.vmsBefore);
  });

  it('a destination pool that cannot hold a vTPM', async () => {
    const r = await attempt({
      destinationRestrictsVtpm: true,
      job: destination({ network: { name: 'DR LAN' } }),
    });
    expect(r.problems).toEqual([
      expect.objectContaining({
        field: 'jobs[job1].destination.pool',
        message: expect.stringContaining('cannot hold a vTPM'),
      }),
    ]);
    expect(r.run.vms[0]).toMatchObject({ status: 'failed', errorCode: 'VTPM_UNSUPPORTED' });
    expect(r.vmsAfter).toEqual(r.vmsBefore);
  });
});
