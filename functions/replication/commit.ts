import type { VmRecord, Xapi } from '../xapi/index.js';
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
  network?: string;
}

/** Fields VM.create requires (docs/xapi.md, "Object model"), taken from the source snapshot. */
const VM_CREATE_FIELDS = [
  'user_version',
  'memory_static_max',
  'memory_dynamic_max',
  'memory_dynamic_min',
  'memory_static_min',
  'VCPUs_params',
  'VCPUs_max',
  'VCPUs_at_startup',
  'actions_after_shutdown',
  'actions_after_reboot',
  'actions_after_crash',
  'PV_bootloader',
  'PV_kernel',
  'PV_ramdisk',
  'PV_args',
  'PV_bootloader_args',
  'PV_legacy_args',
  'HVM_boot_policy',
  'HVM_boot_params',
  'platform',
  'PCI_bus',
  'recommendations',
  'domain_type',
  'HVM_shadow_multiplier',
] as const;

function replicaRecord(req: CommitRequest): Record<string, unknown> {
  const src = req.sourceSnapshot.rec as unknown as Record<string, unknown>;
  const rec: Record<string, unknown> = {};
  for (const field of VM_CREATE_FIELDS) if (src[field] !== undefined) rec[field] = src[field];
  return {
    ...rec,
    name_label: recoveryPointName(req.jobId, req.sourceVm.name_label, readableTime(req.time)),
    name_description: `xcr recovery point of VM ${req.sourceVm.uuid} (${req.sourceVm.name_label}), job ${req.jobId}, ${req.time}`,
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
    blocked_operations: { start: START_BLOCKED_REASON, start_on: START_BLOCKED_REASON },
    tags: [REPLICA_TAG, `xcr:job=${req.jobId}`],
  };
}

async function findReplica(xapi: Xapi, req: CommitRequest): Promise<string | undefined> {
  const all = await xapi.getAllRecords('VM');
  return [...all].find(([, v]) => {
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

async function attachDisks(xapi: Xapi, vm: string, req: CommitRequest): Promise<void> {
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

async function attachVifs(source: Xapi, xapi: Xapi, vm: string, req: CommitRequest): Promise<void> {
  if (!req.network) return;
  const present = new Set<string>();
  for (const ref of (await xapi.getRecord('VM', vm)).VIFs)
    present.add((await xapi.getRecord('VIF', ref)).device);
  for (const vifRef of req.sourceSnapshot.rec.VIFs) {
    const vif = await source.getRecord('VIF', vifRef);
    if (present.has(vif.device)) continue;
    await xapi.call('VIF.create', {
      device: vif.device,
      network: req.network,
      VM: vm,
      MAC: vif.MAC,
      MTU: vif.MTU,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
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
  await attachDisks(dest, vm, req);
  await attachVifs(source, dest, vm, req);
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
export async function markExported(xapi: Xapi, snapshot: Ref<VmRecord>, chain: number): Promise<void> {
  const rec = await xapi.getRecord('VM', snapshot.ref);
  if (rec.other_config[KEY.status] === STATUS.exported) return;
  await mergeOtherConfig(xapi, 'VM', snapshot.ref, rec.other_config, {
    [KEY.status]: STATUS.exported,
    [KEY.chain]: String(chain),
  });
}
