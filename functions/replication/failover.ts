import type { VmRecord, Xapi } from '../xapi/index.js';
import { findVmByUuid, vmDisks } from './inventory.js';
import { KEY, REPLICA_TAG, ROLE } from './metadata.js';
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
 * Failover / test restore: clones a recovery point into an ordinary, startable VM. The recovery
 * point itself is not modified (VM.clone only reads it), so it stays a valid base for deltas.
 */
export async function cloneRecoveryPoint(xapi: Xapi, rpUuid: string, name?: string): Promise<string> {
  const rp = await findVmByUuid(xapi, rpUuid);
  if (rp.rec.other_config[KEY.role] !== ROLE.recoveryPoint) {
    throw new Error(`VM ${rpUuid} is not an xcr recovery point`);
  }
  const clone = await xapi.callAsync<string>(
    'VM.clone',
    rp.ref,
    name ?? rp.rec.name_label.replace(/ \(xcr .*\)$/, ''),
  );
  const rec = await xapi.getRecord('VM', clone);
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
