import type { VdiRecord, Xapi } from '../xapi/index.js';
import { type ChainPolicy, cloneWithinChainLimit } from './chain.js';
import type { ImageFormat } from './image-format.js';
import type { DiskRef } from './inventory.js';
import { KEY, ROLE, STATUS } from './metadata.js';
import type { DiskDecision } from './rules/full-or-delta.js';
import { ownershipOf } from './rules/ownership.js';
import { explainNoSpace } from './space.js';
import { mergeOtherConfig } from './tagging.js';

export interface TargetRequest {
  /** How deep a delta's clone may make the destination chain, and how long to wait for coalescing. */
  chain: ChainPolicy;
  jobId: string;
  runId: string;
  vmUuid: string;
  time: string;
  srRef: string;
  /** The source snapshot's disk this target will receive. */
  source: DiskRef;
  decision: DiskDecision;
  /** The ref of `decision.recoveryPointVdi` when this step has read it. */
  recoveryPointVdiRef?: string | undefined;
  /** qcow2: a full's new VDI is asked as qcow2 (a delta's clone keeps the recovery point's format). */
  imageFormat?: ImageFormat;
}

function targetKeys(req: TargetRequest): Record<string, string> {
  return {
    [KEY.job]: req.jobId,
    [KEY.vm]: req.vmUuid,
    [KEY.run]: req.runId,
    [KEY.role]: ROLE.replicaDisk,
    [KEY.status]: STATUS.pending,
    [KEY.time]: req.time,
    [KEY.userdevice]: req.source.userdevice,
    [KEY.sourceVdi]: req.source.vdi.rec.uuid,
  };
}

/** This run's target VDI for a disk, if an earlier attempt of the step already made it: the source
 *  snapshot's disk names it (`xcr:target`, see linkTarget), so no listing of the destination. */
export async function findTarget(
  xapi: Xapi,
  snapshotVdi: VdiRecord,
  req: { jobId: string; runId: string; vmUuid: string; userdevice: string },
): Promise<[string, VdiRecord] | undefined> {
  const uuid = snapshotVdi.other_config[KEY.target];
  if (!uuid) return undefined;
  let found: [string, VdiRecord];
  try {
    const ref = await xapi.getByUuid('VDI', uuid);
    found = [ref, await xapi.getRecord('VDI', ref)];
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'UUID_INVALID' || code === 'HANDLE_INVALID') return undefined;
    throw err;
  }
  const [, v] = found;
  const own = ownershipOf(v, req.jobId);
  const ours =
    own.kind === 'ours' &&
    own.run === req.runId &&
    !v.is_a_snapshot &&
    v.other_config[KEY.vm] === req.vmUuid &&
    v.other_config[KEY.role] === ROLE.replicaDisk &&
    v.other_config[KEY.userdevice] === req.userdevice;
  return ours ? found : undefined;
}

/** Records on the source snapshot's disk which destination VDI receives it (read by findTarget; a
 *  crash before this write leaves a pending target that the next run's sweep removes). */
export async function linkTarget(source: Xapi, disk: DiskRef, targetUuid: string): Promise<void> {
  await source.setMapEntry('VDI', disk.vdi.ref, 'other_config', KEY.target, targetUuid);
}

export interface Target {
  ref: string;
  uuid: string;
  /** Set when a delta could not clone within the chain limit and copied the recovery point's disk. */
  warning?: string;
}

/**
 * Makes the writable target of one disk on the destination: a clone of the recovery point's disk for
 * a delta (only changed blocks will be written into it) — or a flat copy of it when its VHD chain is
 * at the limit — or a new empty VDI for a full. The previous recovery point itself is only read.
 */
export async function createTarget(xapi: Xapi, req: TargetRequest): Promise<Target> {
  const name = `${req.source.vdi.rec.name_label} (xcr ${req.jobId})`;
  if (req.decision.kind === 'delta') {
    const rpVdi = req.recoveryPointVdiRef ?? (await xapi.getByUuid('VDI', req.decision.recoveryPointVdi!));
    const made = await cloneWithinChainLimit(xapi, rpVdi, req.srRef, req.chain);
    const rec = await xapi.getRecord('VDI', made.ref);
    await mergeOtherConfig(xapi, 'VDI', made.ref, rec.other_config, {
      ...targetKeys(req),
      [KEY.self]: rec.uuid,
    });
    await xapi.call('VDI.set_name_label', made.ref, name);
    return { ref: made.ref, uuid: rec.uuid, ...(made.warning ? { warning: made.warning } : {}) };
  }
  const created = await xapi
    .call<string>('VDI.create', {
      name_label: name,
      name_description: `replica of VDI ${req.source.vdi.rec.uuid} by xcr job ${req.jobId}`,
      SR: req.srRef,
      virtual_size: req.source.vdi.rec.virtual_size,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: targetKeys(req),
      xenstore_data: {},
      sm_config: req.imageFormat === 'qcow2' ? { 'image-format': 'qcow2' } : {},
      tags: [],
    })
    .catch(async (err: unknown) => {
      throw await explainNoSpace(xapi, req.srRef, req.source.vdi.rec.virtual_size, err);
    });
  // The uuid exists only now; stamped at once so a copy of the pending disk is told apart.
  const rec = await xapi.getRecord('VDI', created);
  await mergeOtherConfig(xapi, 'VDI', created, rec.other_config, { [KEY.self]: rec.uuid });
  return { ref: created, uuid: rec.uuid };
}
