import type { VifRecord, VmRecord, Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';
import { vmDisks } from './inventory.js';
import { KEY, REPLICA_TAG } from './metadata.js';
import { listRecoveryPoints } from './recovery-points.js';

export interface RecoveryPointInfo {
  uuid: string;
  name: string;
  jobId: string;
  sourceVm: string;
  time: string;
  chain: number;
  /** The last drill's result (`xcr:drill`), '' when never drilled. */
  drill: string;
  disks: { userdevice: string; vdi: string; virtualSize: number }[];
}

async function describe(xapi: Xapi, vm: VmRecord): Promise<RecoveryPointInfo> {
  const oc = vm.other_config;
  return {
    uuid: vm.uuid,
    name: vm.name_label,
    jobId: oc[KEY.job] ?? '',
    sourceVm: oc[KEY.vm] ?? '',
    time: oc[KEY.time] ?? '',
    chain: Number(oc[KEY.chain] ?? 0) || 0,
    drill: oc[KEY.drill] ?? '',
    disks: (await vmDisks(xapi, vm)).map((d) => ({
      userdevice: d.userdevice,
      vdi: d.vdi.rec.uuid,
      virtualSize: d.vdi.rec.virtual_size,
    })),
  };
}

/** A job's complete recovery points on the destination, newest first. */
export async function recoveryPointsOf(xapi: Xapi, jobId: string): Promise<RecoveryPointInfo[]> {
  const rps = await listRecoveryPoints(xapi, jobId);
  return Promise.all(rps.map((rp) => describe(xapi, rp.rec)));
}

/**
 * VM.clone gives every VIF a new MAC; a failover copy must look like its source to DHCP
 * reservations and licences, so each VIF is recreated with the recovery point's MAC (MAC is
 * fixed at VIF.create: there is no setter).
 */
async function restoreMacs(xapi: Xapi, rp: VmRecord, clone: string): Promise<void> {
  const wanted = new Map<string, VifRecord>();
  for (const ref of rp.VIFs) {
    const vif = await xapi.getRecord('VIF', ref);
    wanted.set(vif.device, vif);
  }
  for (const ref of (await xapi.getRecord('VM', clone)).VIFs) {
    const vif = await xapi.getRecord('VIF', ref);
    const src = wanted.get(vif.device);
    if (!src || src.MAC === vif.MAC) continue;
    await xapi.call('VIF.destroy', ref);
    await xapi.call('VIF.create', {
      device: vif.device,
      network: vif.network,
      VM: clone,
      MAC: src.MAC,
      MTU: vif.MTU,
      locking_mode: vif.locking_mode,
      ipv4_allowed: vif.ipv4_allowed,
      ipv6_allowed: vif.ipv6_allowed,
      other_config: vif.other_config,
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
}

export interface CloneOptions {
  name?: string | undefined;
  /** keep xapi's fresh MACs (a copy that runs beside its source) instead of the source's */
  newMacs?: boolean | undefined;
}

/**
 * Failover / test restore: clones a recovery point into an ordinary, startable VM. The recovery
 * point itself is not modified (VM.clone only reads it), so it stays a valid base for deltas.
 * VM.clone copies NVRAM, bios_strings, the vTPM and its contents; a host may remove some UEFI
 * variables from a clone's NVRAM (xapi's efi-clone list), so the recovery point's map is put back.
 */
export async function cloneRecoveryPoint(
  xapi: Xapi,
  rpUuid: string,
  where: { pool: string; jobId: string },
  opts: CloneOptions = {},
): Promise<string> {
  const name = opts.name;
  const rp = (await listRecoveryPoints(xapi, where.jobId)).find((p) => p.rec.uuid === rpUuid);
  if (!rp) {
    throw new XcrPermanentError(
      'RECOVERY_POINT_NOT_FOUND',
      `no recovery point ${rpUuid} of job ${where.jobId} on the destination pool "${where.pool}"; list them with \`xcr recovery-points ${where.jobId}\``,
    );
  }
  const clone = await xapi.callAsync<string>(
    'VM.clone',
    rp.ref,
    name ?? rp.rec.name_label.replace(/ \(xcr .*\)$/, ''),
  );
  if (!opts.newMacs) await restoreMacs(xapi, rp.rec, clone);
  const rec = await xapi.getRecord('VM', clone);
  if (JSON.stringify(rec.NVRAM) !== JSON.stringify(rp.rec.NVRAM))
    await xapi.call('VM.set_NVRAM', clone, rp.rec.NVRAM);
  const other = Object.fromEntries(Object.entries(rec.other_config).filter(([k]) => !k.startsWith('xcr:')));
  await xapi.call('VM.set_other_config', clone, { ...other, 'xcr:cloned-from': rp.rec.uuid });
  await xapi.call('VM.set_blocked_operations', clone, {});
  await xapi.call(
    'VM.set_tags',
    clone,
    rec.tags.filter((t) => t !== REPLICA_TAG && !t.startsWith('xcr:')),
  );
  for (const disk of await vmDisks(xapi, rec)) {
    const oc = Object.fromEntries(
      Object.entries(disk.vdi.rec.other_config).filter(([k]) => !k.startsWith('xcr:')),
    );
    await xapi.call('VDI.set_other_config', disk.vdi.ref, oc);
  }
  return (await xapi.getRecord('VM', clone)).uuid;
}
