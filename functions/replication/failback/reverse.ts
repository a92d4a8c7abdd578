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

/**
 * The reverse disk of each userdevice on the source pool: those `reverseRun` made, else new clones
 * of the base snapshot's disks (marked pending on the base disk while VDI.clone runs) — or, when the
 * base is gone, new empty disks beside the original VM's (the first reverse sync is then a full).
 */
export async function reverseDisks(
  source: Xapi,
  o: {
    jobId: string;
    run: string;
    vm: string;
    reverseRun: string | undefined;
    base: DiskRef[] | undefined;
    /** The copy's disks (sizes, names) and the original VM's (SRs) for new empty disks. */
    copyDisks: DiskRef[];
    originalDisks: DiskRef[];
    /** The SR (ref) for new disks where the original VM has no disk (--sr), else the pool's default. */
    sr?: string | undefined;
  },
): Promise<Map<string, { ref: string; uuid: string }>> {
  const out = new Map<string, { ref: string; uuid: string }>();
  const runs = new Set([o.run, ...(o.reverseRun ? [o.reverseRun] : [])]);
  for (const [ref, v] of await source.getAllRecords('VDI')) {
    const oc = v.other_config;
    if (
      oc[KEY.foJob] === o.jobId &&
      oc[KEY.foRole] === FO_ROLE.reverseDisk &&
      oc[KEY.vm] === o.vm &&
      (oc[KEY.self] === v.uuid || oc[KEY.self] === undefined) &&
      runs.has(oc[KEY.foRun] ?? '')
    )
      out.set(oc[KEY.userdevice] ?? '', { ref, uuid: v.uuid });
  }
  const keys = (userdevice: string) => ({
    [KEY.foJob]: o.jobId,
    [KEY.foRole]: FO_ROLE.reverseDisk,
    [KEY.foRun]: o.run,
    [KEY.vm]: o.vm,
    [KEY.userdevice]: userdevice,
  });
  for (const d of o.base ?? o.copyDisks) {
    if (out.has(d.userdevice)) continue;
    let ref: string;
    if (o.base) {
      const oc = d.vdi.rec.other_config;
      await source.call('VDI.set_other_config', d.vdi.ref, {
        ...oc,
        [KEY.foJob]: o.jobId,
        [KEY.foPending]: o.run,
      });
      ref = await source.callAsync<string>('VDI.clone', d.vdi.ref, {});
      const rec = await source.getRecord('VDI', ref);
      await source.call('VDI.set_other_config', ref, {
        ...withoutXcr(rec.other_config),
        ...keys(d.userdevice),
      });
      await source.call('VDI.set_other_config', d.vdi.ref, oc);
    } else {
      ref = await source.call<string>('VDI.create', {
        name_label: d.vdi.rec.name_label,
        name_description: `failback of ${d.vdi.rec.uuid} by xcr job ${o.jobId}`,
        SR: await srFor(
          source,
          o.originalDisks.find((x) => x.userdevice === d.userdevice),
          o.sr,
        ),
        virtual_size: d.vdi.rec.virtual_size,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: keys(d.userdevice),
        xenstore_data: {},
        sm_config: {},
        tags: [],
      });
    }
    const rec = await source.getRecord('VDI', ref);
    await source.call('VDI.set_other_config', ref, { ...rec.other_config, [KEY.self]: rec.uuid });
    out.set(d.userdevice, { ref, uuid: rec.uuid });
  }
  return out;
}

/** The SR of the original VM's disk at that userdevice, else the one asked for (--sr), else the
 *  pool's default SR; none of them is refused by name. */
async function srFor(source: Xapi, disk: DiskRef | undefined, asked: string | undefined): Promise<string> {
  if (disk) return disk.vdi.rec.SR;
  if (asked) return asked;
  const pool = [...(await source.getAllRecords('pool')).values()][0]!;
  const sr = pool.default_SR;
  const there = sr !== 'OpaqueRef:NULL' && (await source.getRecord('SR', sr).catch(() => undefined));
  if (!there)
    throw new XcrPermanentError(
      'NO_SOURCE_SR',
      `the failback needs new disks on the source pool (the original VM or its base is gone) and the pool has no default SR; name one with "xcr failback --sr <uuid or name>"`,
    );
  return sr;
}

export interface SyncResult {
  snapshot: string;
  bytes: number;
  /** How many disks the reverse snapshot has (`only` counts up to it). */
  diskCount: number;
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
  x: {
    dest: Xapi;
    source: Xapi;
    run: string;
    record: FailoverRecord;
    copy: Ref<VmRecord>;
    /** S's disks, undefined when S is gone (the first sync is a full). */
    base: DiskRef[] | undefined;
    originalDisks: DiskRef[];
    /** Stream only the disk at this position of the snapshot's (one bounded step of the machine). */
    only?: number;
    sr?: string | undefined;
  },
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
    copyDisks: await vmDisks(x.dest, x.copy.rec),
    originalDisks: x.originalDisks,
    sr: x.sr,
  });
  const prev = x.record.reverseBase
    ? await findVmByUuid(x.dest, x.record.reverseBase).catch(() => undefined)
    : undefined;
  // against the last reverse snapshot, else against R (its content is S's); a full without either
  const fromVm = prev ?? (x.base ? await findVmByUuid(x.dest, x.record.point) : undefined);
  const from = fromVm ? await vmDisks(x.dest, fromVm.rec) : undefined;
  let bytes = 0;
  const snapDisks = await vmDisks(x.dest, snap.rec);
  for (const [i, d] of snapDisks.entries()) {
    if (x.only !== undefined && i !== x.only) continue;
    const base = from?.find((b) => b.userdevice === d.userdevice);
    const target = disks.get(d.userdevice);
    if ((from && !base) || !target)
      throw new XcrPermanentError(
        'FAILBACK_DISKS_DIFFER',
        `disk ${d.userdevice} of the DR copy has no counterpart in ${target ? 'the snapshot it is sent against' : 'the base snapshot on the source pool'} (was a disk added at DR?)`,
      );
    bytes += await streamDisk({
      source: x.dest,
      destination: x.source,
      vdi: d.vdi.ref,
      base: base?.vdi.ref,
      target: target.ref,
      targetSize: d.vdi.rec.virtual_size,
      timeoutMs: ctx.job.transferTimeoutSec * 1000,
      bytesPerSecond: ctx.job.bandwidthLimitMBps ? ctx.job.bandwidthLimitMBps * 1e6 : undefined,
    });
  }
  return { snapshot: snap.rec.uuid, bytes, diskCount: snapDisks.length, reverseRun, disks };
}
