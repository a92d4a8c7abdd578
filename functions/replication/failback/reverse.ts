/**
 * Reverse replication of a DR copy to the source pool: a snapshot of the copy, streamed as a
 * differencing VHD against the previous reverse snapshot (or against the recovery point R the copy
 * was cloned from, whose content equals the source's base snapshot S) into the reverse disks —
 * clones of S's disks on the source pool. Only what the copy changed since that base travels.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import type { DiskRef, Ref } from '../inventory.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { FO_ROLE, KEY, pendingFailoverName } from '../metadata.js';
import type { FailoverRecord } from '../rules/failover.js';
import { streamDisk } from '../transfer.js';

const withoutXcr = (m: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('xcr:')));

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/** This failback run's reverse snapshot of the copy (taken and tagged once per run). */
export async function reverseSnapshot(
  dest: Xapi,
  jobId: string,
  run: string,
  copy: Ref<VmRecord>,
): Promise<Ref<VmRecord>> {
  let ref: string | undefined;
  for (const s of copy.rec.snapshots) {
    const rec = await dest.getRecord('VM', s).catch((err: unknown) => {
      if (gone(err)) return undefined;
      throw err;
    });
    const oc = rec?.other_config ?? {};
    const ours = oc[KEY.foRun] === run && oc[KEY.foRole] === FO_ROLE.reverseSnapshot;
    if (rec && (ours || rec.name_label === pendingFailoverName(jobId, run))) ref = s;
  }
  ref ??= await dest.callAsync<string>('VM.snapshot', copy.ref, pendingFailoverName(jobId, run));
  const rec = await dest.getRecord('VM', ref);
  const keys = { [KEY.foJob]: jobId, [KEY.foRun]: run, [KEY.vm]: copy.rec.other_config[KEY.vm] ?? '' };
  for (const d of await vmDisks(dest, rec)) {
    if (d.vdi.rec.other_config[KEY.self] === d.vdi.rec.uuid) continue;
    await dest.call('VDI.set_other_config', d.vdi.ref, {
      ...withoutXcr(d.vdi.rec.other_config),
      ...keys,
      [KEY.foRole]: FO_ROLE.reverseSnapshotDisk,
      [KEY.self]: d.vdi.rec.uuid,
    });
  }
  if (rec.other_config[KEY.self] !== rec.uuid) {
    await dest.call('VM.set_other_config', ref, {
      ...withoutXcr(rec.other_config),
      ...keys,
      [KEY.foRole]: FO_ROLE.reverseSnapshot,
      [KEY.self]: rec.uuid,
    });
    await dest.call('VM.set_name_label', ref, `${copy.rec.name_label} (xcr failback ${run})`);
  }
  return { ref, rec: await dest.getRecord('VM', ref) };
}

/** The reverse disk of each userdevice on the source pool: those `reverseRun` made, else new clones
 *  of the base snapshot's disks (marked pending on the base disk while VDI.clone runs). */
export async function reverseDisks(
  source: Xapi,
  o: { jobId: string; run: string; vm: string; reverseRun: string | undefined; base: DiskRef[] },
): Promise<Map<string, { ref: string; uuid: string }>> {
  const out = new Map<string, { ref: string; uuid: string }>();
  const runs = new Set([o.run, ...(o.reverseRun ? [o.reverseRun] : [])]);
  for (const [ref, v] of await source.getAllRecords('VDI')) {
    const oc = v.other_config;
    if (
      oc[KEY.foJob] === o.jobId &&
      oc[KEY.foRole] === FO_ROLE.reverseDisk &&
      oc[KEY.vm] === o.vm &&
      oc[KEY.self] === v.uuid &&
      runs.has(oc[KEY.foRun] ?? '')
    )
      out.set(oc[KEY.userdevice] ?? '', { ref, uuid: v.uuid });
  }
  for (const d of o.base) {
    if (out.has(d.userdevice)) continue;
    const oc = d.vdi.rec.other_config;
    await source.call('VDI.set_other_config', d.vdi.ref, {
      ...oc,
      [KEY.foJob]: o.jobId,
      [KEY.foPending]: o.run,
    });
    const ref = await source.callAsync<string>('VDI.clone', d.vdi.ref, {});
    const rec = await source.getRecord('VDI', ref);
    await source.call('VDI.set_other_config', ref, {
      ...withoutXcr(rec.other_config),
      [KEY.foJob]: o.jobId,
      [KEY.foRole]: FO_ROLE.reverseDisk,
      [KEY.foRun]: o.run,
      [KEY.vm]: o.vm,
      [KEY.userdevice]: d.userdevice,
      [KEY.self]: rec.uuid,
    });
    await source.call('VDI.set_other_config', d.vdi.ref, oc);
    out.set(d.userdevice, { ref, uuid: rec.uuid });
  }
  return out;
}

export interface SyncResult {
  snapshot: string;
  bytes: number;
  reverseRun: string;
  disks: Map<string, { ref: string; uuid: string }>;
}

/**
 * One reverse delta: snapshot the copy, stream each disk against `record.reverseBase` (or R) into
 * its reverse disk. The record is updated by the caller only after every disk arrived, so a failed
 * attempt is repeated from the same base (the blocks it wrote are written again).
 */
export async function syncReverse(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; run: string; record: FailoverRecord; copy: Ref<VmRecord>; base: DiskRef[] },
): Promise<SyncResult> {
  const jobId = ctx.job.id;
  const snap = await reverseSnapshot(x.dest, jobId, x.run, x.copy);
  const reverseRun = x.record.reverseRun ?? x.run;
  const disks = await reverseDisks(x.source, {
    jobId,
    run: x.run,
    vm: x.record.vm,
    reverseRun: x.record.reverseRun,
    base: x.base,
  });
  const prev = x.record.reverseBase
    ? await findVmByUuid(x.dest, x.record.reverseBase).catch(() => undefined)
    : undefined;
  const from = await vmDisks(x.dest, (prev ?? (await findVmByUuid(x.dest, x.record.point))).rec);
  let bytes = 0;
  for (const d of await vmDisks(x.dest, snap.rec)) {
    const base = from.find((b) => b.userdevice === d.userdevice);
    const target = disks.get(d.userdevice);
    if (!base || !target)
      throw new XcrPermanentError(
        'FAILBACK_DISKS_DIFFER',
        `disk ${d.userdevice} of the DR copy has no counterpart in ${base ? 'the base snapshot on the source pool' : 'the recovery point it was cloned from'} (was a disk added at DR?)`,
      );
    bytes += await streamDisk({
      source: x.dest,
      destination: x.source,
      vdi: d.vdi.ref,
      base: base.vdi.ref,
      target: target.ref,
      targetSize: d.vdi.rec.virtual_size,
      timeoutMs: ctx.job.transferTimeoutSec * 1000,
      bytesPerSecond: ctx.job.bandwidthLimitMBps ? ctx.job.bandwidthLimitMBps * 1e6 : undefined,
    });
  }
  return { snapshot: snap.rec.uuid, bytes, reverseRun, disks };
}
