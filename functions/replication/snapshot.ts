import type { VmRecord, Xapi } from '../xapi/index.js';
import type { DiskRef, Ref } from './inventory.js';
import { vmDisks } from './inventory.js';
import { KEY, pendingSnapshotName, ROLE, STATUS, snapshotName } from './metadata.js';
import { type BaseCandidate, selectBase } from './rules/base.js';
import type { PlanBase } from './rules/full-or-delta.js';
import { ownershipOf } from './rules/ownership.js';
import { mergeOtherConfig } from './tagging.js';

export interface SnapshotRequest {
  jobId: string;
  runId: string;
  vm: Ref<VmRecord>;
  /** ISO time of the run, stored on everything it creates. */
  time: string;
  /** The VM's snapshot records this step has read already. */
  known?: KnownSnapshots;
}

/**
 * Snapshot records a step has already read (or just written), by ref: a later lookup in the same
 * step reads only the others and adds them. Never kept across invocations.
 */
export type KnownSnapshots = Map<string, VmRecord>;

async function snapshotsOf(
  xapi: Xapi,
  vm: VmRecord,
  known: KnownSnapshots = new Map(),
): Promise<Ref<VmRecord>[]> {
  const out: Ref<VmRecord>[] = [];
  for (const ref of vm.snapshots) {
    const rec = known.get(ref);
    if (rec) {
      out.push({ ref, rec });
      continue;
    }
    try {
      const read = await xapi.getRecord('VM', ref);
      known.set(ref, read);
      out.push({ ref, rec: read });
    } catch (err) {
      if ((err as { code?: string }).code !== 'HANDLE_INVALID') throw err;
    }
  }
  return out;
}

/**
 * Takes (or finds, when this step runs again for the same run) the run's snapshot of a source VM and
 * tags it and its disks as pending for this job. The snapshot is created under a name carrying the
 * run id, so a crash between VM.snapshot and tagging still leaves something a retry or a later sweep
 * recognises.
 */
export async function takeSourceSnapshot(
  xapi: Xapi,
  req: SnapshotRequest,
): Promise<{ snapshot: Ref<VmRecord>; disks: DiskRef[] }> {
  const pendingName = pendingSnapshotName(req.jobId, req.runId);
  const existing = (await snapshotsOf(xapi, req.vm.rec, req.known)).find((s) => {
    const own = ownershipOf(s.rec, req.jobId);
    return own.kind === 'ours' && own.run === req.runId;
  });
  const ref = existing?.ref ?? (await xapi.callAsync<string>('VM.snapshot', req.vm.ref, pendingName));
  const rec = await xapi.getRecord('VM', ref);
  const keys = {
    [KEY.job]: req.jobId,
    [KEY.vm]: req.vm.rec.uuid,
    [KEY.run]: req.runId,
    [KEY.role]: ROLE.sourceSnapshot,
    [KEY.time]: req.time,
  };
  const disks = await vmDisks(xapi, rec);
  for (const disk of disks) {
    const oc = disk.vdi.rec.other_config;
    if (oc[KEY.run] === req.runId && oc[KEY.self] === disk.vdi.rec.uuid) continue;
    await mergeOtherConfig(xapi, 'VDI', disk.vdi.ref, oc, {
      ...keys,
      [KEY.userdevice]: disk.userdevice,
      [KEY.self]: disk.vdi.rec.uuid,
    });
  }
  // the record as these writes leave it (no read back: nothing else writes this snapshot meanwhile)
  let tagged = rec;
  if (rec.other_config[KEY.run] !== req.runId || rec.other_config[KEY.self] !== rec.uuid) {
    const other_config = { ...rec.other_config, ...keys, [KEY.status]: STATUS.pending, [KEY.self]: rec.uuid };
    await mergeOtherConfig(xapi, 'VM', ref, rec.other_config, other_config);
    tagged = { ...tagged, other_config };
  }
  if (rec.name_label === pendingName) {
    const name_label = snapshotName(req.jobId, req.vm.rec.name_label, req.time);
    await xapi.call('VM.set_name_label', ref, name_label);
    tagged = { ...tagged, name_label };
  }
  return { snapshot: { ref, rec: tagged }, disks };
}

/** A source VM's snapshots as plain records for the base rule. */
export async function snapshotRecords(
  xapi: Xapi,
  vm: VmRecord,
  known?: KnownSnapshots,
): Promise<(BaseCandidate & { rec: VmRecord })[]> {
  return (await snapshotsOf(xapi, vm, known)).map((s) => ({
    ref: s.ref,
    rec: s.rec,
    uuid: s.rec.uuid,
    other_config: s.rec.other_config,
    is_a_snapshot: s.rec.is_a_snapshot,
    snapshotOf: vm.uuid,
  }));
}

/** The newest snapshot of this job whose content reached the destination: the next delta's base. */
export async function findExportedBase(
  xapi: Xapi,
  jobId: string,
  vm: VmRecord,
  known?: KnownSnapshots,
): Promise<{ snapshot: Ref<VmRecord>; base: PlanBase; disks: DiskRef[] } | undefined> {
  const exported = selectBase(await snapshotRecords(xapi, vm, known), jobId, vm.uuid).base;
  if (!exported) return undefined;
  const disks = await vmDisks(xapi, exported.rec);
  return {
    snapshot: { ref: exported.ref, rec: exported.rec },
    disks,
    base: {
      snapshotUuid: exported.uuid,
      chain: Number(exported.other_config[KEY.chain] ?? 0) || 0,
      disks: disks.map((d) => ({
        userdevice: d.userdevice,
        vdiUuid: d.vdi.rec.uuid,
        virtualSize: d.vdi.rec.virtual_size,
      })),
    },
  };
}
