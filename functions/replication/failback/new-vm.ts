/**
 * The cutover of a failback whose original VM is gone from the source pool: the reverse disks (a
 * full copy of the DR copy's disks, reverse.ts) go under a new VM made there from the halted DR
 * copy as a recovery point is made from its snapshot (commit.ts: the boot fields of
 * boot-fields.ts, bios_strings, CD drives, the vTPM, the VIFs with their MACs) — its VIFs on the
 * source networks the job's network map sends to the copy's networks. Until the cutover ends the
 * new VM carries the failback keys under a run the copy's record keeps (an attempt that died is
 * found again, never doubled; once no record keeps it, a sweep removes it); then it is an ordinary
 * VM, with the job's tag when the job selects by tag, and the copy's final state is its first
 * recovery point, so forward replication resumes as a delta.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { networks } from '../boot-checks.js';
import {
  attachCdDrives,
  attachDisks,
  attachVifs,
  carriedFields,
  copyVtpm,
  devicesOf,
  noDevices,
  setBiosStrings,
  type VmOrigin,
} from '../commit.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import { listed } from '../failover/contract.js';
import { logAll } from '../failover/pools.js';
import { writeCopyRecord, writeRecord } from '../failover/records.js';
import { findVmByUuid, type Ref, vmDisks } from '../inventory.js';
import { FO_ROLE, KEY, pendingFailoverName } from '../metadata.js';
import { jobNetworkMap, resolveNetworks, reverseNetworks, sharedLandingNote } from '../network-map.js';
import { type FailoverRecord, newVmNotice } from '../rules/failover.js';
import { adoptDisks, commitFailback, requireCbt } from './cutover.js';

type Disks = Map<string, { ref: string; uuid: string }>;

/** The new VM an earlier attempt made for this VM's failback (still carrying the failback keys). */
async function findNewVm(source: Xapi, jobId: string, vm: string): Promise<Ref<VmRecord> | undefined> {
  for (const [ref, rec] of await source.getAllRecords('VM')) {
    const oc = rec.other_config;
    if (
      !rec.is_a_snapshot &&
      oc[KEY.foJob] === jobId &&
      oc[KEY.foRole] === FO_ROLE.newVm &&
      oc[KEY.vm] === vm &&
      (oc[KEY.self] === undefined || oc[KEY.self] === rec.uuid)
    )
      return { ref, rec };
  }
  return undefined;
}

/** The copy's networks (destination) → source networks, the job's network map reversed. */
async function networksBack(
  ctx: RunContext,
  x: { source: Xapi; dest: Xapi; copy: Ref<VmRecord> },
  notes: string[],
): Promise<Map<string, string>> {
  const used: string[] = [];
  for (const vif of x.copy.rec.VIFs) used.push((await x.dest.getRecord('VIF', vif)).network);
  const [sources, dests] = [await networks(x.source), await networks(x.dest)];
  const forward = resolveNetworks(sources, dests, jobNetworkMap(ctx.job.destination)).mapped;
  const back = reverseNetworks(forward, sources, dests, used);
  if (back.problems.length) throw new XcrPermanentError('NETWORK_UNMAPPED', back.problems.join('; '));
  // with a "*" map every network of the source pool lands on one: the note names MAX_LISTED, the log all
  for (const shared of back.shared) {
    logAll(ctx, 'source networks that land on one destination network', 'sources', shared.sources, {
      copy: x.copy.rec.uuid,
      destination: shared.dest,
      back: shared.pick,
    });
    notes.push(sharedLandingNote(shared, listed(shared.sources)));
  }
  return back.mapped;
}

/** The new VM (made, or found), with everything the copy has: disks, CD drives, VIFs, vTPM. */
async function makeNewVm(
  ctx: RunContext,
  x: { source: Xapi; dest: Xapi; copy: Ref<VmRecord>; record: FailoverRecord; disks: Disks },
  notes: string[],
): Promise<Ref<VmRecord>> {
  const jobId = ctx.job.id;
  // a run the copy's record keeps (the final sync's): the new VM is swept only once no record is left
  const run = x.record.reverseBaseRun ?? x.record.run;
  const recorded = x.record.newVm
    ? await findVmByUuid(x.source, x.record.newVm).catch(() => undefined)
    : undefined;
  let vm = recorded ?? (await findNewVm(x.source, jobId, x.record.vm));
  const found = vm !== undefined;
  if (!vm) {
    const ref = await x.source.call<string>('VM.create', {
      ...carriedFields(x.copy.rec),
      name_label: pendingFailoverName(jobId, run),
      is_a_template: false,
      affinity: 'OpaqueRef:NULL',
      other_config: {
        [KEY.foJob]: jobId,
        [KEY.foRun]: run,
        [KEY.foRole]: FO_ROLE.newVm,
        [KEY.vm]: x.record.vm,
      },
      tags: [],
    });
    const rec = await x.source.getRecord('VM', ref);
    await x.source.call('VM.set_other_config', ref, { ...rec.other_config, [KEY.self]: rec.uuid });
    vm = { ref, rec: await x.source.getRecord('VM', ref) };
  }
  const origin: VmOrigin = { sourceSnapshot: x.copy, networks: await networksBack(ctx, x, notes) };
  await setBiosStrings(x.source, vm.ref, origin);
  // each reverse disk at its userdevice, bootable as the copy's disk there (syncReverse made one per disk)
  const disks = (await vmDisks(x.dest, x.copy.rec)).map((d) => ({
    source: d,
    target: x.disks.get(d.userdevice)!.ref,
  }));
  const present = found ? await devicesOf(x.source, vm.ref) : noDevices();
  await attachDisks(x.source, vm.ref, { disks }, present);
  await attachCdDrives(x.dest, x.source, vm.ref, origin, present);
  await attachVifs(x.dest, x.source, vm.ref, origin, present);
  await copyVtpm(x.dest, x.source, vm.ref, origin);
  return { ref: vm.ref, rec: await x.source.getRecord('VM', vm.ref) };
}

/** The new VM becomes an ordinary VM named like the copy, with the job's tag (a job by tag). */
async function adoptNewVm(ctx: RunContext, source: Xapi, vm: Ref<VmRecord>, name: string): Promise<void> {
  const oc = vm.rec.other_config;
  const plain = Object.fromEntries(Object.entries(oc).filter(([k]) => !k.startsWith('xcr:')));
  if (Object.keys(plain).length !== Object.keys(oc).length)
    await source.call('VM.set_other_config', vm.ref, plain);
  if (vm.rec.name_label !== name) await source.call('VM.set_name_label', vm.ref, name);
  const vms = ctx.job.vms;
  if ('tag' in vms && !vm.rec.tags.includes(vms.tag)) await source.call('VM.add_tags', vm.ref, vms.tag);
}

/**
 * The cutover into a new VM (the original is gone). Repeated whole by a retry: the new VM is
 * recorded on the copy as soon as it exists, and every part is idempotent.
 */
export async function cutoverToNewVm(
  ctx: RunContext,
  x: {
    dest: Xapi;
    source: Xapi;
    copy: Ref<VmRecord>;
    record: FailoverRecord;
    run: string;
    chain: number;
  },
): Promise<{ record: FailoverRecord; recoveryPoint: string; notes: string[] }> {
  const disks: Disks = new Map();
  for (const [dev, uuid] of Object.entries(x.record.reverseDisks ?? {}))
    disks.set(dev, { ref: await x.source.getByUuid('VDI', uuid), uuid });
  const notes: string[] = [];
  await requireCbt(x.source, disks, ctx.job);
  const vm = await makeNewVm(ctx, { ...x, disks }, notes);
  let rec: FailoverRecord = { ...x.record, newVm: vm.rec.uuid };
  if (x.record.newVm !== vm.rec.uuid) await writeCopyRecord(x.dest, x.copy.ref, rec);
  notes.push(...(await adoptDisks(x.source, disks, ctx.job.enableCbt)));
  await adoptNewVm(ctx, x.source, vm, x.copy.rec.name_label);
  const recoveryPoint = await commitFailback(ctx, {
    source: x.source,
    dest: x.dest,
    run: x.run,
    original: await findVmByUuid(x.source, vm.rec.uuid),
    reverseSnapshot: rec.reverseBase!,
    chain: x.chain,
  });
  rec = { ...rec, state: 'failed-back' };
  // as in the cutover into the original: after the source snapshot, removed last by `finish`
  await writeRecord(x.source, vm.ref, rec);
  await writeCopyRecord(x.dest, x.copy.ref, rec);
  notes.push(newVmNotice(ctx.job, rec.vm, vm.rec.uuid));
  return { record: rec, recoveryPoint, notes };
}
