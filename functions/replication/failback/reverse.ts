/**
 * Reverse replication of a DR copy to the source pool: a snapshot of the copy, each disk sent into
 * its reverse disk — a clone of the source's base snapshot S — as what the copy changed since the
 * previous reverse snapshot (or since the recovery point R the copy was cloned from, whose content
 * equals S's): the changed 64 KiB extents CBT lists, over NBD, or a differencing VHD export
 * (reverse-mode.ts chooses per disk). Only what the copy changed since that base travels.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { cbtBudget, transferCbtChunk } from '../cbt-transfer.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import { copySnapshot, withoutXcr } from '../failover/copy-snapshot.js';
import type { ImageFormat } from '../image-format.js';
import type { DiskRef, Ref } from '../inventory.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { FO_ROLE, KEY } from '../metadata.js';
import type { FailoverRecord } from '../rules/failover.js';
import { streamDisk } from '../transfer.js';
import { planReverse } from './reverse-plan.js';

/** This failback run's reverse snapshot of the copy (taken and tagged once per run). */
export function reverseSnapshot(
  dest: Xapi,
  jobId: string,
  run: string,
  copy: Ref<VmRecord>,
): Promise<Ref<VmRecord>> {
  return copySnapshot(dest, {
    jobId,
    run,
    copy,
    role: FO_ROLE.reverseSnapshot,
    diskRole: FO_ROLE.reverseSnapshotDisk,
    label: `${copy.rec.name_label} (xcr failback ${run})`,
  });
}

/**
 * The reverse disk of each userdevice on the source pool: the newest an earlier sync of this
 * failback made (this run's, else the last sync's, else the first's), else a new clone of the base
 * snapshot's disk (marked pending on the base disk while VDI.clone runs) — or, when the base is
 * gone or the disk must travel whole (`fresh`, unless this run made it already), a new empty disk
 * beside the original VM's.
 */
export async function reverseDisks(
  source: Xapi,
  o: {
    jobId: string;
    run: string;
    vm: string;
    reverseRun: string | undefined;
    reverseBaseRun?: string | undefined;
    base: DiskRef[] | undefined;
    /** The copy's disks (sizes, names) and the original VM's (SRs) for new empty disks. */
    copyDisks: DiskRef[];
    originalDisks: DiskRef[];
    /** The SR (ref) for new disks where the original VM has no disk (--sr), else the pool's default. */
    sr?: string | undefined;
    /** Userdevices whose disk travels whole into a new empty disk; the image format of each new disk. */
    fresh?: Set<string>;
    formats?: Map<string, ImageFormat>;
  },
): Promise<Map<string, { ref: string; uuid: string }>> {
  const out = new Map<string, { ref: string; uuid: string; rank: number }>();
  const ranks = [o.reverseRun, o.reverseBaseRun, o.run];
  for (const [ref, v] of await source.getAllRecords('VDI')) {
    const oc = v.other_config;
    const run = oc[KEY.foRun];
    const rank = run === undefined ? -1 : ranks.lastIndexOf(run);
    const dev = oc[KEY.userdevice] ?? '';
    if (
      oc[KEY.foJob] === o.jobId &&
      oc[KEY.foRole] === FO_ROLE.reverseDisk &&
      oc[KEY.vm] === o.vm &&
      (oc[KEY.self] === v.uuid || oc[KEY.self] === undefined) &&
      rank >= 0 &&
      rank >= (out.get(dev)?.rank ?? -1)
    )
      out.set(dev, { ref, uuid: v.uuid, rank });
  }
  const keys = (userdevice: string) => ({
    [KEY.foJob]: o.jobId,
    [KEY.foRole]: FO_ROLE.reverseDisk,
    [KEY.foRun]: o.run,
    [KEY.vm]: o.vm,
    [KEY.userdevice]: userdevice,
  });
  for (const d of o.base ?? o.copyDisks) {
    const fresh = o.fresh?.has(d.userdevice) === true;
    const found = out.get(d.userdevice);
    if (found && (!fresh || found.rank === 2)) continue;
    let ref: string;
    if (o.base && !fresh) {
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
      const copyDisk = o.copyDisks.find((c) => c.userdevice === d.userdevice) ?? d;
      ref = await source.call<string>('VDI.create', {
        name_label: copyDisk.vdi.rec.name_label,
        name_description: `failback of ${copyDisk.vdi.rec.uuid} by xcr job ${o.jobId}`,
        SR: await srFor(
          source,
          o.originalDisks.find((x) => x.userdevice === d.userdevice),
          o.sr,
        ),
        virtual_size: copyDisk.vdi.rec.virtual_size,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: keys(d.userdevice),
        xenstore_data: {},
        sm_config: o.formats?.get(d.userdevice) === 'qcow2' ? { 'image-format': 'qcow2' } : {},
        tags: [],
      });
    }
    const rec = await source.getRecord('VDI', ref);
    await source.call('VDI.set_other_config', ref, { ...rec.other_config, [KEY.self]: rec.uuid });
    out.set(d.userdevice, { ref, uuid: rec.uuid, rank: 2 });
  }
  return new Map([...out].map(([dev, { ref, uuid }]) => [dev, { ref, uuid }]));
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
  /** False when the disk went over NBD only up to `cursor` (the next call goes on from there). */
  done: boolean;
  cursor?: number;
  /** Said to the operator: a disk that travelled whole where a delta was possible. */
  notes: string[];
}

/**
 * One reverse delta: snapshot the copy, send each disk against `record.reverseBase` (or R) into
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
    /** Send only the disk at this position of the snapshot's (one bounded step of the machine). */
    only?: number;
    /** Where the disk at `only` goes on over NBD (a previous step sent it up to there). */
    cursor?: number | undefined;
    sr?: string | undefined;
  },
): Promise<SyncResult> {
  const jobId = ctx.job.id;
  const snap = await reverseSnapshot(x.dest, jobId, x.run, x.copy);
  const reverseRun = x.record.reverseRun ?? x.run;
  const prev = x.record.reverseBase
    ? await findVmByUuid(x.dest, x.record.reverseBase).catch(() => undefined)
    : undefined;
  // against the last reverse snapshot, else against R (its content is S's); a full without either
  const fromVm = prev ?? (x.base ? await findVmByUuid(x.dest, x.record.point) : undefined);
  const from = fromVm ? await vmDisks(x.dest, fromVm.rec) : undefined;
  const snapDisks = await vmDisks(x.dest, snap.rec);
  const cbtVm =
    prev ??
    (x.record.cbtBaseline
      ? await findVmByUuid(x.dest, x.record.cbtBaseline).catch(() => undefined)
      : undefined);
  const plans = await planReverse(x.dest, {
    disks: snapDisks,
    delta: from !== undefined,
    cbtFrom: cbtVm
      ? {
          what: prev ? 'the last reverse snapshot' : 'its CBT baseline',
          disks: await vmDisks(x.dest, cbtVm.rec),
        }
      : undefined,
    resuming: x.cursor ? snapDisks[x.only ?? -1]?.userdevice : undefined,
  });
  const disks = await reverseDisks(x.source, {
    jobId,
    run: x.run,
    vm: x.record.vm,
    reverseRun: x.record.reverseRun,
    reverseBaseRun: x.record.reverseBaseRun,
    base: x.base,
    copyDisks: await vmDisks(x.dest, x.copy.rec),
    originalDisks: x.originalDisks,
    sr: x.sr,
    fresh: new Set([...plans].filter(([, p]) => p.freshDisk).map(([dev]) => dev)),
    formats: new Map([...plans].map(([dev, p]) => [dev, p.format])),
  });
  const result: SyncResult = {
    snapshot: snap.rec.uuid,
    bytes: 0,
    diskCount: snapDisks.length,
    reverseRun,
    disks,
    done: true,
    notes: [],
  };
  for (const [i, d] of snapDisks.entries()) {
    if (x.only !== undefined && i !== x.only) continue;
    const base = from?.find((b) => b.userdevice === d.userdevice);
    const target = disks.get(d.userdevice);
    if ((from && !base) || !target)
      throw new XcrPermanentError(
        'FAILBACK_DISKS_DIFFER',
        `disk ${d.userdevice} of the DR copy has no counterpart in ${target ? 'the snapshot it is sent against' : 'the base snapshot on the source pool'} (was a disk added at DR?)`,
      );
    const plan = plans.get(d.userdevice)!;
    ctx.logger.info('reverse sync of a disk', {
      vmUuid: x.record.vm,
      userdevice: d.userdevice,
      transfer: plan.transfer,
      reason: plan.reason,
    });
    if (plan.warning && !x.cursor) result.notes.push(plan.warning);
    if (plan.transfer === 'cbt-delta' || plan.transfer === 'cbt-full') {
      const r = await transferCbtChunk({
        source: x.dest,
        destination: x.source,
        vdi: d.vdi.ref,
        ...(plan.cbtFrom ? { base: plan.cbtFrom.vdi.ref } : {}),
        target: target.ref,
        virtualSize: d.vdi.rec.virtual_size,
        imageFormat: plan.format,
        cursor: x.cursor ?? 0,
        ...cbtBudget(ctx.job),
      });
      result.bytes += r.bytes;
      if (!r.done) return { ...result, done: false, cursor: r.cursor };
      continue;
    }
    result.bytes += await streamDisk({
      source: x.dest,
      destination: x.source,
      vdi: d.vdi.ref,
      base: plan.transfer === 'vhd-delta' ? base?.vdi.ref : undefined,
      target: target.ref,
      targetSize: d.vdi.rec.virtual_size,
      timeoutMs: ctx.job.transferTimeoutSec * 1000,
      bytesPerSecond: ctx.job.bandwidthLimitMBps ? ctx.job.bandwidthLimitMBps * 1e6 : undefined,
    });
  }
  return result;
}
