import type { VbdRecord, VifRecord, VmRecord, Xapi } from '../xapi/index.js';
import { CREATE_FIELDS, settableBiosStrings } from './boot-fields.js';
import { XcrPermanentError } from './errors.js';
import type { DiskRef, Ref } from './inventory.js';
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

/** Records of the origin's VBDs and VIFs the caller has read in this step (the others are read). */
export interface KnownDevices {
  vbds?: ReadonlyMap<string, VbdRecord>;
  vifs?: ReadonlyMap<string, VifRecord>;
}

export interface CommitRequest {
  known?: KnownDevices;
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
export type VmOrigin = Pick<CommitRequest, 'sourceSnapshot' | 'networks' | 'known'>;

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
async function createReplica(xapi: Xapi, req: CommitRequest): Promise<Ref<VmRecord>> {
  const vm = await xapi.call<string>('VM.create', replicaRecord(req));
  const rec = await xapi.getRecord('VM', vm);
  const other_config = { ...rec.other_config, [KEY.self]: rec.uuid };
  await mergeOtherConfig(xapi, 'VM', vm, rec.other_config, other_config);
  // the record as this write leaves it: the steps below change its devices, never its other_config
  return { ref: vm, rec: { ...rec, other_config } };
}

/**
 * The devices a VM has, so the attach steps below add only the missing ones: read from the pool
 * (a re-run finds what an earlier attempt made), or none for a VM this very call created. Each
 * attach step adds what it creates.
 */
export interface Devices {
  /** userdevice → whether the VBD there is a disk (a VBD of type Disk with a VDI) */
  vbds: Map<string, boolean>;
  /** VIF devices */
  vifs: Set<string>;
}

export const noDevices = (): Devices => ({ vbds: new Map(), vifs: new Set() });

export async function devicesOf(xapi: Xapi, vm: string): Promise<Devices> {
  const rec = await xapi.getRecord('VM', vm);
  const devices = noDevices();
  for (const ref of rec.VBDs) {
    const vbd = await xapi.getRecord('VBD', ref);
    devices.vbds.set(vbd.userdevice, vbd.type === 'Disk' && !vbd.empty && vbd.VDI !== 'OpaqueRef:NULL');
  }
  for (const ref of rec.VIFs) devices.vifs.add((await xapi.getRecord('VIF', ref)).device);
  return devices;
}

/** A VBD per disk at its userdevice (where no disk is yet). */
export async function attachDisks(
  xapi: Xapi,
  vm: string,
  req: Pick<CommitRequest, 'disks'>,
  present: Devices,
): Promise<void> {
  for (const { source, target } of req.disks) {
    if (present.vbds.get(source.userdevice)) continue;
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
    present.vbds.set(source.userdevice, true);
  }
}

/** Adds to `vm` on `xapi` what the origin has on `source` and `present` lacks. */
type AttachFromOrigin = (
  source: Xapi,
  xapi: Xapi,
  vm: string,
  req: VmOrigin,
  present: Devices,
) => Promise<void>;

/** An empty drive per source CD drive (the ISO may not exist on the destination). */
export const attachCdDrives: AttachFromOrigin = async (source, xapi, vm, req, present) => {
  for (const ref of req.sourceSnapshot.rec.VBDs) {
    const vbd = req.known?.vbds?.get(ref) ?? (await source.getRecord('VBD', ref));
    if (vbd.type !== 'CD' || present.vbds.has(vbd.userdevice)) continue;
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
    present.vbds.set(vbd.userdevice, false);
  }
};

/** The source's VIFs, same device, MAC, MTU and locking, on the mapped destination networks. */
export const attachVifs: AttachFromOrigin = async (source, xapi, vm, req, present) => {
  for (const vifRef of req.sourceSnapshot.rec.VIFs) {
    const vif = req.known?.vifs?.get(vifRef) ?? (await source.getRecord('VIF', vifRef));
    if (present.vifs.has(vif.device)) continue;
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
    present.vifs.add(vif.device);
  }
};

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
  const found = await findReplica(dest, req);
  const created = found ? undefined : await createReplica(dest, req);
  const vm = found ?? created!.ref;
  // VM.create stores no blocked_operations whatever its record says (xapi_vm.ml), so start is
  // blocked by its own call; repeated on a re-run in case the first one died in between.
  await dest.call('VM.set_blocked_operations', vm, START_BLOCKED);
  await setBiosStrings(dest, vm, req);
  const present = found ? await devicesOf(dest, vm) : noDevices();
  // the disks' VBDs were read with the snapshot's disks: only its other VBDs (CD drives) are read
  const vbds = new Map([
    ...(req.known?.vbds ?? []),
    ...req.disks.map((d) => [d.source.vbd.ref, d.source.vbd.rec] as const),
  ]);
  const origin = { ...req, known: { ...req.known, vbds } };
  await attachDisks(dest, vm, req, present);
  await attachCdDrives(source, dest, vm, origin, present);
  await attachVifs(source, dest, vm, origin, present);
  await copyVtpm(source, dest, vm, req);
  const targets = await Promise.all(req.disks.map(({ target }) => dest.getRecord('VDI', target)));
  for (const [i, { target }] of req.disks.entries()) {
    const vdi = targets[i]!;
    if (vdi.other_config[KEY.status] !== STATUS.complete || vdi.other_config[KEY.self] !== vdi.uuid) {
      await mergeOtherConfig(dest, 'VDI', target, vdi.other_config, {
        [KEY.status]: STATUS.complete,
        [KEY.self]: vdi.uuid,
      });
    }
  }
  // a replica this call created is known; one an earlier attempt made is read
  const rec = created?.rec ?? (await dest.getRecord('VM', vm));
  if (rec.other_config[KEY.status] === STATUS.complete && rec.other_config[KEY.self] === rec.uuid)
    return { ref: vm, rec };
  const other_config = { ...rec.other_config, [KEY.status]: STATUS.complete, [KEY.self]: rec.uuid };
  await mergeOtherConfig(dest, 'VM', vm, rec.other_config, other_config);
  return { ref: vm, rec: { ...rec, other_config } };
}

/**
 * Marks the source snapshot as the new delta base; `snapshot.rec` must be its current record.
 * Returns the record as it leaves it.
 */
export async function markExported(
  xapi: Xapi,
  snapshot: Ref<VmRecord>,
  chain: number,
  recoveryPoint: string,
): Promise<VmRecord> {
  const rec = snapshot.rec;
  if (rec.other_config[KEY.status] === STATUS.exported) return rec;
  const other_config = {
    ...rec.other_config,
    [KEY.status]: STATUS.exported,
    [KEY.chain]: String(chain),
    [KEY.recoveryPoint]: recoveryPoint,
  };
  await mergeOtherConfig(xapi, 'VM', snapshot.ref, rec.other_config, other_config);
  return { ...rec, other_config };
}
