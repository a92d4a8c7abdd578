import type { VmRecord, Xapi } from '../xapi/index.js';
import { CREATE_FIELDS, settableBiosStrings } from './boot-fields.js';
import { XcrPermanentError } from './errors.js';
import type { DiskRef, Ref } from './inventory.js';
import { vmDisks } from './inventory.js';
import {
  KEY,
  REPLICA_TAG,
  ROLE,
  readableTime,
  recoveryPointName,
  START_BLOCKED_REASON,
  STATUS,
} from './metadata.js';
import { ownershipOf } from './rules/ownership.js';
import { mergeOtherConfig } from './tagging.js';

export interface CommitRequest {
  jobId: string;
  runId: string;
  time: string;
  chain: number;
  sourceVm: VmRecord;
  sourceSnapshot: Ref<VmRecord>;
  /** Source snapshot disks with the target VDI (ref) each was written into. */
  disks: { source: DiskRef; target: string }[];
  /** source network ref → destination network ref (planLanding) */
  networks: Map<string, string>;
}

const START_BLOCKED = { start: START_BLOCKED_REASON, start_on: START_BLOCKED_REASON };

/** What a VM made from another is built from (its VIFs, CD drives, bios_strings, vTPM are read
 *  there): a recovery point from its source snapshot, a failback's new VM from the DR copy. */
export type VmOrigin = Pick<CommitRequest, 'sourceSnapshot' | 'networks'>;

/** The VM.create fields (boot-fields.ts) carried from the VM a new one is made from. */
export function carriedFields(from: VmRecord): Record<string, unknown> {
  const src = from as unknown as Record<string, unknown>;
  const rec: Record<string, unknown> = {};
  for (const field of CREATE_FIELDS) if (src[field] !== undefined) rec[field] = src[field];
  return rec;
}

function replicaRecord(req: CommitRequest): Record<string, unknown> {
  return {
    ...carriedFields(req.sourceSnapshot.rec),
    name_label: recoveryPointName(req.jobId, req.sourceVm.name_label, readableTime(req.time)),
    is_a_template: false,
    affinity: 'OpaqueRef:NULL',
    other_config: {
      [KEY.job]: req.jobId,
      [KEY.vm]: req.sourceVm.uuid,
      [KEY.run]: req.runId,
      [KEY.role]: ROLE.recoveryPoint,
      [KEY.status]: STATUS.pending,
      [KEY.time]: req.time,
      [KEY.chain]: String(req.chain),
      [KEY.sourceSnapshot]: req.sourceSnapshot.rec.uuid,
    },
    tags: [REPLICA_TAG, `xcr:job=${req.jobId}`],
  };
}

/** This run's replica VM, if an earlier attempt of the step made it: looked up by its name (the name
 *  carries the job, the VM's name and the run's time), never by listing the destination's VMs. */
async function findReplica(xapi: Xapi, req: CommitRequest): Promise<string | undefined> {
  const name = recoveryPointName(req.jobId, req.sourceVm.name_label, readableTime(req.time));
  const all: [string, VmRecord][] = [];
  for (const ref of await xapi.call<string[]>('VM.get_by_name_label', name)) {
    try {
      all.push([ref, await xapi.getRecord('VM', ref)]);
    } catch (err) {
      if ((err as { code?: string }).code !== 'HANDLE_INVALID') throw err;
    }
  }
  return all.find(([, v]) => {
    const own = ownershipOf(v, req.jobId);
    return (
      own.kind === 'ours' &&
      own.run === req.runId &&
      !v.is_a_snapshot &&
      v.other_config[KEY.vm] === req.sourceVm.uuid &&
      v.other_config[KEY.role] === ROLE.recoveryPoint
    );
  })?.[0];
}

/** Writes `xcr:self` right after VM.create, before anything else: from then on a user's clone of the
 *  pending point can be told from it. */
async function createReplica(xapi: Xapi, req: CommitRequest): Promise<string> {
  const vm = await xapi.call<string>('VM.create', replicaRecord(req));
  const rec = await xapi.getRecord('VM', vm);
  await mergeOtherConfig(xapi, 'VM', vm, rec.other_config, { [KEY.self]: rec.uuid });
  return vm;
}

/** A VBD per disk at its userdevice (a re-run adds only the missing ones). */
export async function attachDisks(xapi: Xapi, vm: string, req: Pick<CommitRequest, 'disks'>): Promise<void> {
  const present = new Set((await vmDisks(xapi, await xapi.getRecord('VM', vm))).map((d) => d.userdevice));
  for (const { source, target } of req.disks) {
    if (present.has(source.userdevice)) continue;
    await xapi.call('VBD.create', {
      VM: vm,
      VDI: target,
      userdevice: source.userdevice,
      bootable: source.vbd.rec.bootable,
      mode: 'RW',
      type: 'Disk',
      empty: false,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
}

/** An empty drive per source CD drive (the ISO may not exist on the destination). */
export async function attachCdDrives(source: Xapi, xapi: Xapi, vm: string, req: VmOrigin): Promise<void> {
  const present = new Set<string>();
  for (const ref of (await xapi.getRecord('VM', vm)).VBDs)
    present.add((await xapi.getRecord('VBD', ref)).userdevice);
  for (const ref of req.sourceSnapshot.rec.VBDs) {
    const vbd = await source.getRecord('VBD', ref);
    if (vbd.type !== 'CD' || present.has(vbd.userdevice)) continue;
    await xapi.call('VBD.create', {
      VM: vm,
      VDI: 'OpaqueRef:NULL',
      userdevice: vbd.userdevice,
      bootable: vbd.bootable,
      mode: 'RO',
      type: 'CD',
      empty: true,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
}

/** The source's VIFs, same device, MAC, MTU and locking, on the mapped destination networks. */
export async function attachVifs(source: Xapi, xapi: Xapi, vm: string, req: VmOrigin): Promise<void> {
  const present = new Set<string>();
  for (const ref of (await xapi.getRecord('VM', vm)).VIFs)
    present.add((await xapi.getRecord('VIF', ref)).device);
  for (const vifRef of req.sourceSnapshot.rec.VIFs) {
    const vif = await source.getRecord('VIF', vifRef);
    if (present.has(vif.device)) continue;
    const network = req.networks.get(vif.network);
    if (!network) {
      throw new XcrPermanentError(
        'NETWORK_UNMAPPED',
        `VIF ${vif.device} is on a source network that maps to nothing`,
      );
    }
    await xapi.call('VIF.create', {
      device: vif.device,
      network,
      VM: vm,
      MAC: vif.MAC,
      MTU: vif.MTU,
      locking_mode: vif.locking_mode,
      ipv4_allowed: vif.ipv4_allowed,
      ipv6_allowed: vif.ipv6_allowed,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
}

/** VM.create drops bios_strings and xapi lets them be set once: set them before anything can boot it. */
export async function setBiosStrings(xapi: Xapi, vm: string, req: VmOrigin): Promise<void> {
  const wanted = settableBiosStrings(req.sourceSnapshot.rec.bios_strings ?? {});
  if (Object.keys(wanted).length === 0) return;
  if (Object.keys((await xapi.getRecord('VM', vm)).bios_strings).length > 0) return;
  await xapi.call('VM.set_bios_strings', vm, wanted);
}

/**
 * Exactly one VTPM with the snapshot's contents. A re-run finds the one an earlier attempt made
 * (VTPM.create refuses a second one with VTPM_MAX_AMOUNT_REACHED) and only rewrites its contents.
 */
export async function copyVtpm(source: Xapi, xapi: Xapi, vm: string, req: VmOrigin): Promise<void> {
  const srcRef = req.sourceSnapshot.rec.VTPMs?.[0];
  if (!srcRef) return;
  const src = await source.getRecord('VTPM', srcRef);
  const contents = await source.call<string>('VTPM.get_contents', srcRef);
  const vtpm =
    (await xapi.getRecord('VM', vm)).VTPMs[0] ??
    (await xapi.callAsync<string>('VTPM.create', vm, src.is_unique));
  await xapi.call('VTPM.set_contents', vtpm, contents);
}

/**
 * Turns the written targets into a complete recovery point (idempotent: a second call with the same
 * run finds what the first made). The recovery point becomes visible as such only by its last
 * write, `xcr:status` = complete; until then a sweep treats it as the leftover of an unfinished run.
 */
export async function commitRecoveryPoint(
  source: Xapi,
  dest: Xapi,
  req: CommitRequest,
): Promise<Ref<VmRecord>> {
  const vm = (await findReplica(dest, req)) ?? (await createReplica(dest, req));
  // VM.create stores no blocked_operations whatever its record says (xapi_vm.ml), so start is
  // blocked by its own call; repeated on a re-run in case the first one died in between.
  await dest.call('VM.set_blocked_operations', vm, START_BLOCKED);
  await setBiosStrings(dest, vm, req);
  await attachDisks(dest, vm, req);
  await attachCdDrives(source, dest, vm, req);
  await attachVifs(source, dest, vm, req);
  await copyVtpm(source, dest, vm, req);
  for (const { target } of req.disks) {
    const vdi = await dest.getRecord('VDI', target);
    if (vdi.other_config[KEY.status] !== STATUS.complete || vdi.other_config[KEY.self] !== vdi.uuid) {
      await mergeOtherConfig(dest, 'VDI', target, vdi.other_config, {
        [KEY.status]: STATUS.complete,
        [KEY.self]: vdi.uuid,
      });
    }
  }
  const rec = await dest.getRecord('VM', vm);
  if (rec.other_config[KEY.status] !== STATUS.complete || rec.other_config[KEY.self] !== rec.uuid) {
    await mergeOtherConfig(dest, 'VM', vm, rec.other_config, {
      [KEY.status]: STATUS.complete,
      [KEY.self]: rec.uuid,
    });
  }
  return { ref: vm, rec: await dest.getRecord('VM', vm) };
}

/** Marks the source snapshot as the new delta base. */
export async function markExported(
  xapi: Xapi,
  snapshot: Ref<VmRecord>,
  chain: number,
  recoveryPoint: string,
): Promise<void> {
  const rec = await xapi.getRecord('VM', snapshot.ref);
  if (rec.other_config[KEY.status] === STATUS.exported) return;
  await mergeOtherConfig(xapi, 'VM', snapshot.ref, rec.other_config, {
    [KEY.status]: STATUS.exported,
    [KEY.chain]: String(chain),
    [KEY.recoveryPoint]: recoveryPoint,
  });
}
