import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { JobConfig } from '../../functions/config/schema.js';
import { Xapi } from '../../functions/xapi/index.js';
import { startPool } from '../../sim/index.js';
import type { GuestBehaviour, SimPool, SimPoolSpec, SimStorageSettings, SimVmSpec } from '../../sim/types.js';
import { type LocalJob, localJob } from './local-job.js';

export type { DrillRequest, StepWrapper } from './local-job.js';

export const MiB = 2 ** 20;
export const BLOCK = 2 * MiB;

type Rec = Record<string, unknown> & { uuid: string; other_config: Record<string, string> };

/** A user's copy (VM.clone, VDI.copy…) carries the job's keys with someone else's `xcr:self`. */
const isCopy = (r: Rec) => r.other_config['xcr:self'] !== undefined && r.other_config['xcr:self'] !== r.uuid;

export interface SitesOptions {
  vms: SimVmSpec[];
  /** VMs the destination pool already holds (other workloads), none by default. */
  destinationVms?: SimVmSpec[];
  job?: Partial<JobConfig>;
  /** More jobs over the same pools and VMs (ids required), run with `runJob`. */
  extraJobs?: (Partial<JobConfig> & { id: string })[];
  /** Names of the VMs the job selects (default: all). */
  select?: string[];
  replicaSrBytes?: number;
  /** SR type of the destination's SR (default ext); the source SR's size (default 64 GiB). */
  replicaSrType?: string;
  sourceSrBytes?: number;
  sourceHosts?: number;
  destinationHosts?: number;
  /** Purpose given to the source pool's network, which makes VDI.get_nbd_info return records. */
  sourceNbdPurpose?: 'nbd' | 'insecure_nbd';
  /** The same for the destination pool (a cbt failback reads the DR copy's changed blocks over NBD). */
  destinationNbdPurpose?: 'nbd' | 'insecure_nbd';
  /** The destination pool lacks the CBT feature (pool.restrictions.restrict_cbt = "true"). */
  destinationRestrictsCbt?: boolean;
  /** Network names of each pool (default: "Pool-wide network" / "Replica network"). */
  sourceNetworks?: string[];
  destinationNetworks?: string[];
  /** The destination pool cannot hold a vTPM (pool.restrictions.restrict_vtpm = "true"). */
  destinationRestrictsVtpm?: boolean;
  /** Serve the source pool over https with this certificate (pinned by fingerprint in the config). */
  sourceTls?: { cert: string; key: string };
  /** Storage timing of each simulated pool (GC quiet period, coalesce time, chain limit, …). */
  sourceStorage?: Partial<SimStorageSettings>;
  destinationStorage?: Partial<SimStorageSettings>;
  /** How guests booted on the destination behave (drills). */
  destinationGuests?: GuestBehaviour[];
}

export interface Sites extends Omit<LocalJob, 'close'> {
  source: SimPool;
  destination: SimPool;
  vmUuid(name: string): string;
  /** The live (non-snapshot) VDI uuids of a source VM, by userdevice order. */
  liveDisks(name: string): string[];
  recoveryPoints(vmName: string): Rec[];
  /** [userdevice, hash] of a recovery point's disks. */
  rpDiskHashes(rp: Rec): [string, string][];
  exportedSnapshot(vmName: string): Rec | undefined;
  snapshotDiskHashes(snapshot: Rec): [string, string][];
  assertReplicasMatchSource(vmName: string): void;
  /** VHD chain depth (counting the disk) of every managed VDI on the destination. */
  destinationChainDepths(): number[];
  /** Objects a run left that should not be there (empty when clean). */
  leaks(jobId?: string): string[];
  assertNoLeaks(): void;
  close(): Promise<void>;
}

/** The two pools' specs (startPool's, or a sim/config.ts file's for a simulator process). */
export function siteSpecs(o: SitesOptions): { source: SimPoolSpec; destination: SimPoolSpec } {
  return {
    source: {
      name: 'site-a',
      hosts: o.sourceHosts,
      srs: [{ name_label: 'Local storage', sizeBytes: o.sourceSrBytes ?? 64 * 2 ** 30, shared: true }],
      networks: (o.sourceNetworks ?? ['Pool-wide network']).map((name_label) => ({ name_label })),
      vms: o.vms,
      ...(o.sourceTls ? { tls: o.sourceTls } : {}),
      ...(o.sourceStorage ? { storage: o.sourceStorage } : {}),
    },
    destination: {
      name: 'site-b',
      hosts: o.destinationHosts,
      srs: [
        {
          name_label: 'Replica storage',
          sizeBytes: o.replicaSrBytes ?? 64 * 2 ** 30,
          shared: true,
          ...(o.replicaSrType ? { type: o.replicaSrType } : {}),
        },
      ],
      networks: [
        ...(o.destinationNetworks ?? ['Replica network']).map((name_label) => ({ name_label })),
        ...(o.destinationGuests ? [{ name_label: 'Drill network' }] : []),
      ],
      ...(o.destinationVms ? { vms: o.destinationVms } : {}),
      ...(o.destinationRestrictsVtpm ? { restrictVtpm: true } : {}),
      ...(o.destinationRestrictsCbt ? { restrictCbt: true } : {}),
      ...(o.destinationStorage ? { storage: o.destinationStorage } : {}),
      ...(o.destinationGuests ? { guests: o.destinationGuests } : {}),
    },
  };
}

export async function startSites(o: SitesOptions): Promise<Sites> {
  const specs = siteSpecs(o);
  const source = await startPool(specs.source);
  const destination = await startPool(specs.destination);
  if (o.sourceNbdPurpose) await addNetworkPurpose(source, o.sourceNbdPurpose, o.sourceTls?.cert);
  if (o.destinationNbdPurpose) await addNetworkPurpose(destination, o.destinationNbdPurpose);
  const vmsByName = new Map(source.test.objects('VM').map(([, r]) => [r.name_label as string, r as Rec]));
  const vmUuid = (name: string) => {
    const vm = vmsByName.get(name);
    if (!vm) throw new Error(`no source VM ${name}`);
    return vm.uuid;
  };
  const local = localJob({
    source,
    destination,
    ...(o.sourceTls ? { sourceTlsFingerprint: new X509Certificate(o.sourceTls.cert).fingerprint256 } : {}),
    vmUuids: (o.select ?? o.vms.map((v) => v.name_label)).map(vmUuid),
    ...(o.job ? { job: o.job } : {}),
    ...(o.extraJobs ? { extraJobs: o.extraJobs } : {}),
  });
  const { config, job } = local;
  const objects = (pool: SimPool, cls: 'VM' | 'VDI' | 'VBD' | 'task') =>
    pool.test.objects(cls).map(([ref, r]) => [ref, r as Rec] as const);

  const sites: Sites = {
    ...local,
    source,
    destination,
    vmUuid,
    liveDisks(name) {
      const vm = objects(source, 'VM').find(([, r]) => r.uuid === vmUuid(name))![1];
      const vbds = new Map(objects(source, 'VBD'));
      return (vm.VBDs as string[])
        .map((ref) => vbds.get(ref)!)
        .filter((vbd) => vbd.type === 'Disk')
        .sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
        .map((vbd) => objects(source, 'VDI').find(([ref]) => ref === vbd.VDI)![1].uuid);
    },
    recoveryPoints(vmName) {
      return objects(destination, 'VM')
        .map(([, r]) => r)
        .filter(
          (r) =>
            r.other_config['xcr:vm'] === vmUuid(vmName) &&
            r.other_config['xcr:status'] === 'complete' &&
            !isCopy(r),
        )
        .sort((a, b) => (b.other_config['xcr:time'] ?? '').localeCompare(a.other_config['xcr:time'] ?? ''));
    },
    rpDiskHashes(rp) {
      return diskHashes(destination, rp);
    },
    exportedSnapshot(vmName) {
      return objects(source, 'VM')
        .map(([, r]) => r)
        .sort((a, b) => (b.other_config['xcr:time'] ?? '').localeCompare(a.other_config['xcr:time'] ?? ''))
        .find(
          (r) =>
            r.is_a_snapshot === true &&
            r.other_config['xcr:vm'] === vmUuid(vmName) &&
            r.other_config['xcr:status'] === 'exported',
        );
    },
    snapshotDiskHashes(snapshot) {
      return diskHashes(source, snapshot);
    },
    assertReplicasMatchSource(vmName) {
      const snap = sites.exportedSnapshot(vmName);
      assert.ok(snap, `exported snapshot of ${vmName}`);
      const rp = sites.recoveryPoints(vmName)[0];
      assert.ok(rp, `recovery point of ${vmName}`);
      assert.equal(
        rp.other_config['xcr:source-snapshot'],
        snap.uuid,
        'recovery point made from the exported snapshot',
      );
      assert.deepEqual(sites.rpDiskHashes(rp), sites.snapshotDiskHashes(snap), `content of ${vmName}`);
    },
    leaks(jobId = job.id) {
      const job = config.jobs.find((j) => j.id === jobId)!;
      const found: string[] = [];
      const src = objects(source, 'VM');
      // Source: only exported snapshots of the job, one per VM, and no orphan snapshot VDIs.
      const perVm = new Map<string, number>();
      for (const [, s] of src) {
        if (String(s.name_label).includes('pending snapshot'))
          found.push(`source VM ${s.uuid} (pending snapshot)`);
        if (s.other_config['xcr:job'] !== job.id || isCopy(s)) continue;
        if (s.other_config['xcr:status'] !== 'exported')
          found.push(`source snapshot ${s.uuid} (${s.other_config['xcr:status']})`);
        perVm.set(s.other_config['xcr:vm']!, (perVm.get(s.other_config['xcr:vm']!) ?? 0) + 1);
      }
      for (const [vm, count] of perVm) if (count > 1) found.push(`${count - 1} extra snapshot(s) of ${vm}`);
      const attachedSrc = new Set(objects(source, 'VBD').map(([, v]) => v.VDI as string));
      for (const [ref, r] of objects(source, 'VDI')) {
        if (r.other_config['xcr:job'] === job.id && !isCopy(r) && !attachedSrc.has(ref))
          found.push(`source VDI ${r.uuid} (orphan)`);
      }
      // Destination: only complete recovery points within retention, every xcr VDI attached to one.
      const replicas = objects(destination, 'VM').filter(
        ([, r]) => r.other_config['xcr:job'] === job.id && !isCopy(r),
      );
      const perVmRp = new Map<string, number>();
      for (const [, r] of replicas) {
        if (r.other_config['xcr:status'] !== 'complete')
          found.push(`replica VM ${r.uuid} (${r.other_config['xcr:status']})`);
        perVmRp.set(r.other_config['xcr:vm']!, (perVmRp.get(r.other_config['xcr:vm']!) ?? 0) + 1);
      }
      for (const [vm, count] of perVmRp)
        if (count > job.retention) found.push(`${count} recovery points of ${vm}`);
      const rpRefs = new Set(replicas.map(([ref]) => ref));
      const attachedToRp = new Set(
        objects(destination, 'VBD')
          .filter(([, v]) => rpRefs.has(v.VM as string))
          .map(([, v]) => v.VDI as string),
      );
      for (const [ref, r] of objects(destination, 'VDI')) {
        if (r.other_config['xcr:job'] === job.id && !isCopy(r) && !attachedToRp.has(ref))
          found.push(`destination VDI ${r.uuid} (stray)`);
      }
      // vTPMs: never orphaned (their VM gone), never more than one per VM.
      for (const pool of [source, destination]) {
        const vms = new Map(pool.test.objects('VM'));
        const perVmTpm = new Map<string, number>();
        for (const [, t] of pool.test.objects('VTPM')) {
          if (!vms.has(t.VM as string)) found.push(`${pool.name} VTPM ${t.uuid} (orphan)`);
          perVmTpm.set(t.VM as string, (perVmTpm.get(t.VM as string) ?? 0) + 1);
        }
        for (const [vm, n] of perVmTpm) if (n > 1) found.push(`${pool.name} VM ${vm} has ${n} VTPMs`);
      }
      for (const pool of [source, destination]) {
        for (const [, t] of objects(pool, 'task')) {
          // the storage manager's own garbage collector task, not something a run made
          if (t.name_label === 'Garbage Collection') continue;
          found.push(`${pool.name} task ${t.name_label} (${t.status})`);
        }
      }
      return found;
    },
    destinationChainDepths() {
      const vdis = destination.test.objects('VDI');
      const byUuid = new Map(vdis.map(([, r]) => [r.uuid as string, r]));
      const depth = (r: Record<string, unknown>): number => {
        const parent = (r.sm_config as Record<string, string>)['vhd-parent'];
        const p = parent ? byUuid.get(parent) : undefined;
        return p ? 1 + depth(p) : 1;
      };
      return vdis.filter(([, r]) => r.managed !== false).map(([, r]) => depth(r));
    },
    assertNoLeaks() {
      assert.deepEqual(sites.leaks(), [], 'leaked objects');
    },
    async close() {
      await Promise.all([source.close(), destination.close()]);
      local.close();
    },
  };
  return sites;
}

function diskHashes(pool: SimPool, vm: Rec): [string, string][] {
  const vbds = new Map(pool.test.objects('VBD'));
  const vdis = new Map(pool.test.objects('VDI'));
  return (vm.VBDs as string[])
    .map((ref) => vbds.get(ref)!)
    .filter((vbd) => vbd.type === 'Disk')
    .map(
      (vbd) =>
        [vbd.userdevice as string, pool.test.hashVdi(vdis.get(vbd.VDI as string)!.uuid as string)] as [
          string,
          string,
        ],
    )
    .sort((a, b) => Number(a[0]) - Number(b[0]));
}

async function addNetworkPurpose(pool: SimPool, purpose: string, cert?: string): Promise<void> {
  const xapi = await Xapi.connect({
    url: pool.url,
    username: pool.username,
    password: pool.password,
    ...(cert
      ? { tls: { fingerprint256: new X509Certificate(cert).fingerprint256 } }
      : { allowPlainHttp: true }),
  });
  try {
    for (const ref of (await xapi.getAllRecords('network')).keys()) {
      await xapi.call('network.add_purpose', ref, purpose);
    }
  } finally {
    await xapi.logout();
  }
}
