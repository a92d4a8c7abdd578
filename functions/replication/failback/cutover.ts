/**
 * The cutover of a failback, on the halted original VM: its disks are replaced by the reverse
 * disks (VBD.destroy + VBD.create at the same userdevice: the VM keeps its uuid, VIFs, MACs, tags
 * and everything else), and the copy's final state becomes a recovery point of a fresh source
 * snapshot, so forward replication resumes as a delta.
 */
import type { JobConfig } from '../../config/schema.js';
import { isTransient } from '../../retry/index.js';
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { landingNetworks } from '../boot-checks.js';
import { pruneOldBases } from '../cleanup.js';
import { commitRecoveryPoint, markExported } from '../commit.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError, XcrTransientError } from '../errors.js';
import { detectFormat } from '../image-format.js';
import { findSr, type Ref, vmDisks } from '../inventory.js';
import { applyRetention } from '../recovery-points.js';
import { takeSourceSnapshot } from '../snapshot.js';
import { createTarget, findTarget, linkTarget } from '../target.js';

const OLD_VDI = 'xcr:fo-old-vdi';
const BOOTABLE = 'xcr:fo-bootable';

/** Puts each reverse disk under the original VM in place of its disk at that userdevice. Returns
 *  the uuids of the disks taken off (a person's: kept, detached). */
export async function swapDisks(
  source: Xapi,
  original: Ref<VmRecord>,
  disks: Map<string, { ref: string; uuid: string }>,
): Promise<string[]> {
  const current = await vmDisks(source, original.rec);
  const old: string[] = [];
  for (const [dev, target] of disks) {
    const cur = current.find((d) => d.userdevice === dev);
    const t = await source.getRecord('VDI', target.ref);
    if (cur?.vdi.ref === target.ref) {
      if (t.other_config[OLD_VDI]) old.push(t.other_config[OLD_VDI]);
      continue;
    }
    if (cur) {
      old.push(cur.vdi.rec.uuid);
      // what the new VBD needs, kept on the reverse disk in case this dies between destroy and create
      await source.call('VDI.set_other_config', target.ref, {
        ...t.other_config,
        [OLD_VDI]: cur.vdi.rec.uuid,
        [BOOTABLE]: String(cur.vbd.rec.bootable),
      });
      await source.call('VBD.destroy', cur.vbd.ref);
    }
    const bootable = (cur ? String(cur.vbd.rec.bootable) : t.other_config[BOOTABLE]) ?? String(dev === '0');
    await source.call('VBD.create', {
      VM: original.ref,
      VDI: target.ref,
      userdevice: dev,
      bootable: bootable === 'true',
      mode: 'RW',
      type: 'Disk',
      empty: false,
      other_config: cur?.vbd.rec.other_config ?? {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    });
  }
  return old;
}

/**
 * CBT on the reverse disks whose forward replication needs it (a cbt job's, any qcow2 disk: the
 * fresh source snapshot the cutover commits is the next forward delta's base, and without CBT on
 * it the next forward run sends them in full, or without enableCbt fails with CBT_UNAVAILABLE every
 * time), before the VM is changed: where it
 * cannot be turned on, the failback stops here, the original VM untouched, and a retry tries again.
 */
export async function requireCbt(
  source: Xapi,
  disks: Map<string, { ref: string; uuid: string }>,
  job: Pick<JobConfig, 'transferMode'>,
): Promise<void> {
  for (const [dev, { ref }] of disks) {
    const t = await source.getRecord('VDI', ref);
    if (t.cbt_enabled) continue;
    const qcow2 = (await detectFormat(source, t)).format === 'qcow2';
    if (job.transferMode !== 'cbt' && !qcow2) continue;
    try {
      await source.call('VDI.enable_cbt', ref);
    } catch (err) {
      const why = `disk ${dev}: VDI.enable_cbt failed on its failback disk (${(err as Error).message}); forward runs send ${qcow2 ? 'a qcow2 disk' : "a cbt job's disks"} in cbt mode only, which needs CBT on the base the cutover makes, so the failback stops before its cutover: retry it once CBT can be turned on${qcow2 ? '' : ", or with the job's transferMode set to auto"}`;
      throw isTransient(err)
        ? new XcrTransientError('CBT_UNAVAILABLE', why)
        : new XcrPermanentError('CBT_UNAVAILABLE', why);
    }
  }
}

/**
 * The reverse disks become plain disks of the VM: the replaced disk's name and other_config, and
 * CBT where the replaced disk had it or the job turns it on (a clone starts without CBT; the fresh
 * source snapshot taken next is the next forward cbt delta's base, which needs it). Returns what
 * could not be done (a disk refusing CBT).
 */
export async function adoptDisks(
  source: Xapi,
  disks: Map<string, { ref: string; uuid: string }>,
  enableCbt: boolean,
): Promise<string[]> {
  const notes: string[] = [];
  for (const [dev, { ref }] of disks) {
    const t = await source.getRecord('VDI', ref);
    const oldUuid = t.other_config[OLD_VDI];
    const old = oldUuid ? await source.getByUuid('VDI', oldUuid).catch(() => undefined) : undefined;
    const rec = old ? await source.getRecord('VDI', old) : undefined;
    const keep = Object.fromEntries(
      Object.entries(rec?.other_config ?? {}).filter(([k]) => !k.startsWith('xcr:')),
    );
    await source.call('VDI.set_other_config', ref, keep);
    if (rec) {
      await source.call('VDI.set_name_label', ref, rec.name_label);
      await source.call('VDI.set_name_description', ref, rec.name_description);
    }
    if (!t.cbt_enabled && (enableCbt || rec?.cbt_enabled)) {
      await source.call('VDI.enable_cbt', ref).catch((err: unknown) => {
        notes.push(
          `disk ${dev}: VDI.enable_cbt failed (${(err as Error).message}): forward runs cannot send it in cbt mode until CBT is on`,
        );
      });
    }
  }
  return notes;
}

/**
 * A source snapshot of the original VM (now holding the copy's final content) and, from clones of
 * the reverse snapshot's disks (the same content), its recovery point: the next forward run's base.
 */
export async function commitFailback(
  ctx: RunContext,
  x: {
    source: Xapi;
    dest: Xapi;
    run: string;
    original: Ref<VmRecord>;
    reverseSnapshot: string;
    chain: number;
  },
): Promise<string> {
  const jobId = ctx.job.id;
  const time = ctx.now().toISOString();
  const { snapshot, disks } = await takeSourceSnapshot(x.source, {
    jobId,
    runId: x.run,
    vm: x.original,
    time,
  });
  const rsRef = await x.dest.getByUuid('VM', x.reverseSnapshot);
  const reverse = await vmDisks(x.dest, await x.dest.getRecord('VM', rsRef));
  const srRef = await findSr(x.dest, ctx.job.destination.sr);
  const pairs = [];
  for (const disk of disks) {
    const from = reverse.find((d) => d.userdevice === disk.userdevice)!;
    const req = { jobId, runId: x.run, vmUuid: x.original.rec.uuid, userdevice: disk.userdevice };
    const found = await findTarget(x.dest, disk.vdi.rec, req);
    const target =
      found?.[0] ??
      (
        await createTarget(x.dest, {
          ...req,
          time,
          srRef,
          source: disk,
          decision: { userdevice: disk.userdevice, kind: 'delta', recoveryPointVdi: from.vdi.rec.uuid },
          chain: { maxDepth: ctx.job.maxChainDepth, waitMs: ctx.job.chainWaitSec * 1000, pollMs: 1000 },
        })
      ).ref;
    // the clone carries the reverse snapshot disk's failback keys: a recovery point's disk has none
    const t = await x.dest.getRecord('VDI', target);
    if (!found) await linkTarget(x.source, disk, t.uuid);
    const keys = Object.entries(t.other_config).filter(([k]) => !k.startsWith('xcr:fo-'));
    if (keys.length !== Object.keys(t.other_config).length)
      await x.dest.call('VDI.set_other_config', target, Object.fromEntries(keys));
    pairs.push({ source: disk, target });
  }
  const rp = await commitRecoveryPoint(x.source, x.dest, {
    jobId,
    runId: x.run,
    time,
    chain: x.chain,
    sourceVm: x.original.rec,
    sourceSnapshot: snapshot,
    disks: pairs,
    networks: (await landingNetworks(x.source, x.dest, ctx, snapshot.rec)).networks,
  });
  await markExported(x.source, snapshot, x.chain, rp.rec.uuid);
  await pruneOldBases(x.source, jobId, (await x.source.getRecord('VM', x.original.ref)) as VmRecord);
  await applyRetention(x.dest, jobId, [x.original.rec.uuid], ctx.job.retention);
  return rp.rec.uuid;
}
