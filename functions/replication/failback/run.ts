/**
 * `xcr failback`: reverse replication of a failed-over VM's DR copy into its original VM.
 * Without --planned it sends the copy's changes so far while the copy keeps running (a pre-sync:
 * the next failback sends only what changed since). With --planned it shuts the copy down, sends
 * the final delta, puts the reverse disks under the halted original VM, records the copy's final
 * state as a recovery point, lifts the fence, starts the original and removes the copy. Holds the
 * job lease; resumable by run id; the copy's record says how far a failback got.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import type { RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import { destroyCopy } from '../failover/copy.js';
import { liftFence, writeRecord } from '../failover/records.js';
import { reachableSource, sweepBoth, withJobLease } from '../failover/run.js';
import { findVmByUuid, type Ref, vmDisks } from '../inventory.js';
import { KEY } from '../metadata.js';
import { copyRecord, type FailoverRecord, failbackRefusal } from '../rules/failover.js';
import { findExportedBase } from '../snapshot.js';
import { adoptDisks, commitFailback, swapDisks } from './cutover.js';
import { syncReverse } from './reverse.js';

export interface FailbackOptions {
  run: string;
  vm: string;
  planned?: boolean | undefined;
}

export interface FailbackReport {
  jobId: string;
  run: string;
  vm: string;
  planned: boolean;
  status: 'synced' | 'failed-back';
  /** Bytes of the reverse deltas this run sent. */
  bytes: number;
  /** planned: the recovery point the copy's final state became. */
  recoveryPoint?: string;
  /** planned: the original VM's previous disks, detached and kept (delete them once content is checked). */
  replacedDisks?: string[];
  removed: string[];
  warnings: string[];
}

const codeOf = (err: unknown) => String((err as { code?: unknown }).code ?? '');

async function shutDownCopy(dest: Xapi, copy: Ref<VmRecord>): Promise<void> {
  if (copy.rec.power_state === 'Halted') return;
  try {
    await dest.callAsync('VM.clean_shutdown', copy.ref);
  } catch (err) {
    if (codeOf(err) !== 'VM_LACKS_FEATURE') throw err;
    throw new XcrPermanentError(
      'CLEAN_SHUTDOWN_IMPOSSIBLE',
      `the DR copy ${copy.rec.uuid} has no guest agent, so it cannot be shut down cleanly; shut it down from inside the guest and run the failback again`,
    );
  }
}

/** The source's base snapshot S the recovery point R was made from, or why it cannot serve. */
async function baseOf(
  source: Xapi,
  dest: Xapi,
  jobId: string,
  record: FailoverRecord,
  original: Ref<VmRecord>,
) {
  const rp = await findVmByUuid(dest, record.point).catch(() => undefined);
  const base = await findExportedBase(source, jobId, original.rec);
  const wanted = rp?.rec.other_config[KEY.sourceSnapshot];
  if (!rp || !base || base.snapshot.rec.uuid !== wanted)
    throw new XcrPermanentError(
      'FAILBACK_BASE_GONE',
      `the base snapshot on the source pool that recovery point ${record.point} was made from is gone, so a delta failback is impossible; a failback by full copy into a new VM is not implemented yet: shut the DR copy down and export it, or keep running at DR`,
    );
  return { disks: base.disks, chain: (Number(rp.rec.other_config[KEY.chain] ?? 0) || 0) + 1 };
}

export async function runFailback(ctx: RunContext, o: FailbackOptions): Promise<FailbackReport> {
  const jobId = ctx.job.id;
  const planned = o.planned === true;
  return withJobLease(ctx, o.run, async () => {
    const dest = await ctx.destination();
    const source = await reachableSource(ctx);
    const copyVm = (await sweepRecords(dest)).vms.find((v) => copyRecord(v, jobId)?.vm === o.vm);
    const record = copyVm && copyRecord(copyVm, jobId);
    const original = source
      ? await findVmByUuid(source, o.vm).catch((err: unknown) => {
          if ((err as { code?: string }).code === 'VM_NOT_FOUND') return undefined;
          throw err;
        })
      : undefined;
    const refusal = failbackRefusal({
      jobId,
      vm: o.vm,
      planned,
      copy: record,
      sourceReachable: source !== undefined,
      originalPowerState: record?.state === 'failed-back' ? undefined : original?.rec.power_state,
    });
    if (refusal) throw new XcrPermanentError(refusal.code, refusal.message);
    if (!original)
      throw new XcrPermanentError(
        'ORIGINAL_VM_GONE',
        `the original VM ${o.vm} is gone from the source pool, so its disks cannot be put back; a failback by full copy into a new VM is not implemented yet: export the DR copy instead`,
      );
    const report: FailbackReport = {
      jobId,
      run: o.run,
      vm: o.vm,
      planned,
      status: 'synced',
      bytes: 0,
      removed: [],
      warnings: [],
    };
    report.removed.push(...(await sweepBoth(ctx, dest, source, o.run)));
    const srcXapi = source!;
    let copy = await findVmByUuid(dest, copyVm!.uuid);
    let rec = record!;
    if (rec.state !== 'failed-back') {
      const base = await baseOf(srcXapi, dest, jobId, rec, original);
      if (planned) {
        await shutDownCopy(dest, copy);
        copy = await findVmByUuid(dest, copy.rec.uuid);
      }
      const sync = await syncReverse(ctx, {
        dest,
        source: srcXapi,
        run: o.run,
        record: rec,
        copy,
        base: base.disks,
      });
      report.bytes = sync.bytes;
      const old = rec.reverseBase;
      rec = { ...rec, reverseRun: sync.reverseRun, reverseBase: sync.snapshot, reverseBaseRun: o.run };
      await writeRecord(dest, copy.ref, rec);
      if (old && old !== sync.snapshot) await destroySnapshot(dest, old);
      if (!planned) {
        await publish(ctx, 'failback synced', { ...report });
        return report;
      }
      report.replacedDisks = await swapDisks(srcXapi, await findVmByUuid(srcXapi, o.vm), sync.disks);
      report.recoveryPoint = await commitFailback(ctx, {
        source: srcXapi,
        dest,
        run: o.run,
        original: await findVmByUuid(srcXapi, o.vm),
        reverseSnapshot: sync.snapshot,
        chain: base.chain,
      });
      rec = { ...rec, state: 'failed-back' };
      await writeRecord(dest, copy.ref, rec);
    }
    await finish(ctx, { dest, source: srcXapi, copy: copy.rec.uuid, vm: o.vm, record: rec, report });
    report.status = 'failed-back';
    await publish(ctx, 'failback succeeded', { ...report });
    return report;
  });
}

/** After the cutover: the reverse disks become the VM's own, the fence goes, the original VM
 *  starts, the copy and its reverse snapshots go. */
async function finish(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; copy: string; vm: string; record: FailoverRecord; report: FailbackReport },
) {
  const original = await findVmByUuid(x.source, x.vm);
  const disks = new Map<string, { ref: string; uuid: string }>();
  for (const d of await vmDisks(x.source, original.rec)) {
    const oc = d.vdi.rec.other_config;
    if (oc[KEY.foJob] === ctx.job.id && oc[KEY.self] === d.vdi.rec.uuid)
      disks.set(d.userdevice, { ref: d.vdi.ref, uuid: d.vdi.rec.uuid });
  }
  await adoptDisks(x.source, disks);
  await liftFence(x.source, original, ctx.job.id);
  const ps = (await x.source.getRecord('VM', original.ref)).power_state;
  if (ps === 'Halted') await x.source.callAsync('VM.start', original.ref, false, false);
  x.report.removed.push(...(await destroyCopy(x.dest, ctx.job.id, x.copy)));
  x.report.removed.push(...(await sweepBoth(ctx, x.dest, x.source, x.report.run)));
}

async function destroySnapshot(dest: Xapi, uuid: string): Promise<void> {
  const snap = await findVmByUuid(dest, uuid).catch(() => undefined);
  if (!snap) return;
  const disks = await vmDisks(dest, snap.rec);
  await dest.destroy('VM', snap.ref);
  for (const d of disks) await dest.destroy('VDI', d.vdi.ref);
}

async function publish(ctx: RunContext, what: string, detail: Record<string, unknown>) {
  await ctx.events.publishEvent?.(`xcr ${what}`, { jobId: ctx.job.id, ...detail });
}
