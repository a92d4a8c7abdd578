/**
 * The DR copy: a clone of a recovery point (the point itself is only read), named like the source,
 * with the source's MACs on the job's mapped networks (the recovery point already has both), owned
 * by the failover run through `xcr:fo-*` keys and recorded by `xcr:failover` before it is started.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { type PoolRecords, removePlanned, sweepRecords } from '../cleanup.js';
import { cloneRecoveryPoint } from '../clone-point.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { FO_ROLE, KEY, pendingFailoverName } from '../metadata.js';
import { type FailoverRecord, planFailoverSweep, recordedRuns } from '../rules/failover.js';
import { writeCopyRecord } from './records.js';

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/** This run's copy of a VM, if an earlier attempt made and tagged it. */
export async function findCopy(xapi: Xapi, jobId: string, run: string, vm: string) {
  const { vms } = await sweepRecords(xapi);
  return vms.find(
    (v) =>
      !v.is_a_snapshot &&
      v.other_config[KEY.foJob] === jobId &&
      v.other_config[KEY.foRun] === run &&
      v.other_config[KEY.foRole] === FO_ROLE.copy &&
      v.other_config[KEY.vm] === vm &&
      v.other_config[KEY.self] === v.uuid,
  );
}

/** Clones the point into the copy (or finds it) and tags the copy and its disks for this run. */
export async function makeCopy(
  xapi: Xapi,
  o: { jobId: string; pool: string; run: string; vm: string; point: string; name: string },
): Promise<string> {
  const found = await findCopy(xapi, o.jobId, o.run, o.vm);
  if (found) return found.uuid;
  const uuid = await cloneRecoveryPoint(
    xapi,
    o.point,
    { pool: o.pool, jobId: o.jobId },
    { name: pendingFailoverName(o.jobId, o.run) },
  );
  const copy = await findVmByUuid(xapi, uuid);
  const keys = { [KEY.foJob]: o.jobId, [KEY.foRun]: o.run, [KEY.vm]: o.vm };
  for (const d of await vmDisks(xapi, copy.rec)) {
    await xapi.call('VDI.set_other_config', d.vdi.ref, {
      ...d.vdi.rec.other_config,
      ...keys,
      [KEY.foRole]: FO_ROLE.copyDisk,
      [KEY.self]: d.vdi.rec.uuid,
    });
  }
  await xapi.call('VM.set_other_config', copy.ref, {
    ...copy.rec.other_config,
    ...keys,
    [KEY.foRole]: FO_ROLE.copy,
    [KEY.self]: uuid,
  });
  await xapi.call('VM.set_name_label', copy.ref, o.name);
  return uuid;
}

/** Records the failover on the copy (from now on the job skips the VM), then starts it. */
export async function recordAndStart(
  xapi: Xapi,
  copyUuid: string,
  record: FailoverRecord,
  start: boolean,
): Promise<void> {
  const copy = await findVmByUuid(xapi, copyUuid);
  await writeCopyRecord(xapi, copy.ref, record);
  if (start && copy.rec.power_state === 'Halted') await xapi.callAsync('VM.start', copy.ref, false, false);
}

/** Stops and destroys a DR copy and the disks the failover gave it, and its snapshots (a
 *  failback's reverse snapshots) with theirs. */
export async function destroyCopy(xapi: Xapi, jobId: string, copyUuid: string): Promise<string[]> {
  const copy = await findVmByUuid(xapi, copyUuid);
  const ours = (vm: VmRecord) =>
    vmDisks(xapi, vm).then((ds) =>
      ds.filter(
        (d) =>
          d.vdi.rec.other_config[KEY.foJob] === jobId && d.vdi.rec.other_config[KEY.self] === d.vdi.rec.uuid,
      ),
    );
  const disks = await ours(copy.rec);
  if (copy.rec.power_state !== 'Halted') await xapi.callAsync('VM.hard_shutdown', copy.ref);
  for (const ref of copy.rec.snapshots) {
    const snap = await xapi.getRecord('VM', ref).catch((err: unknown) => {
      if (gone(err)) return undefined;
      throw err;
    });
    if (snap) disks.push(...(await ours(snap)));
    await destroyIfThere(xapi, 'VM', ref);
  }
  await xapi.destroy('VM', copy.ref);
  for (const d of disks) await destroyIfThere(xapi, 'VDI', d.vdi.ref);
  return [`VM ${copyUuid}`, ...disks.map((d) => `VDI ${d.vdi.rec.uuid}`)];
}

async function destroyIfThere(xapi: Xapi, cls: 'VM' | 'VDI', ref: string): Promise<void> {
  try {
    await xapi.destroy(cls, ref);
  } catch (err) {
    if (!gone(err)) throw err;
  }
}

/**
 * Removes what crashed failover/failback runs left on one pool. `keep` are the runs recorded DR
 * copies name (read from the destination pool, also when this sweeps the source pool).
 */
export async function sweepFailoverLeftovers(
  xapi: Xapi,
  jobId: string,
  /** records: the pool's, when the caller has just read them (lock-check: one listing per run) */
  o: { liveRun?: string; keep: Set<string>; records?: PoolRecords },
): Promise<string[]> {
  const { vms, vdis } = o.records ?? (await sweepRecords(xapi));
  return removePlanned(xapi, planFailoverSweep({ jobId, liveRun: o.liveRun, keep: o.keep, vms, vdis }));
}

/** The runs recorded DR copies keep (their failover runs and reverse runs). */
export async function keptRuns(dest: Xapi, jobId: string): Promise<Set<string>> {
  return recordedRuns((await sweepRecords(dest)).vms, jobId);
}
