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
import { findFailedBack, liftFence, writeCopyRecord, writeRecord } from '../failover/records.js';
import { reachableSource, sweepBoth, withJobLease } from '../failover/run.js';
import { findVmByUuid, type Ref, vmDisks } from '../inventory.js';
import { KEY } from '../metadata.js';
import { copyRecord, type FailoverRecord, failbackRefusal, sourceRecord } from '../rules/failover.js';
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
  const chain = rp ? (Number(rp.rec.other_config[KEY.chain] ?? 0) || 0) + 1 : 0;
  if (!rp || !base || base.snapshot.rec.uuid !== wanted)
    return {
      disks: undefined,
      chain,
      warning: `the base snapshot on the source pool that recovery point ${record.point} was made from is gone (or the point is), so the first reverse sync sends the whole disks into new disks`,
    };
  return { disks: base.disks, chain };
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
    // a failback past its cutover whose copy is gone: its failed-back record on the source VM
    const finished = !record && source ? await findFailedBack(source, jobId, o.vm) : undefined;
    const refusal = failbackRefusal({
      jobId,
      vm: o.vm,
      planned,
      copy: record,
      finished: finished && sourceRecord(finished.rec, jobId),
      sourceReachable: source !== undefined,
      originalPowerState: record?.state === 'failed-over' ? original?.rec.power_state : undefined,
    });
    if (refusal) throw new XcrPermanentError(refusal.code, refusal.message);
    if (finished) return finishFailback(ctx, { dest, source: source!, vm: finished, run: o.run, planned });
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
    if (rec.state === 'failed-back') report.warnings.push(pastCutover(rec));
    if (rec.state === 'failed-over') {
      const base = await baseOf(srcXapi, dest, jobId, rec, original);
      if (base.warning && !rec.reverseBase) {
        report.warnings.push(base.warning);
        ctx.logger.warn(base.warning, { vmUuid: o.vm });
      }
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
        originalDisks: await vmDisks(srcXapi, original.rec),
      });
      report.bytes = sync.bytes;
      const old = rec.reverseBase;
      rec = {
        ...rec,
        reverseRun: sync.reverseRun,
        reverseBase: sync.snapshot,
        reverseBaseRun: o.run,
        ...(planned
          ? {
              state: 'cutover' as const,
              reverseDisks: Object.fromEntries([...sync.disks].map(([dev, d]) => [dev, d.uuid])),
            }
          : {}),
      };
      await writeCopyRecord(dest, copy.ref, rec);
      if (old && old !== sync.snapshot) await destroySnapshot(dest, old);
      if (!planned) {
        await publish(ctx, 'failback synced', { ...report });
        return report;
      }
    }
    if (rec.state === 'cutover')
      rec = await cutover(ctx, { dest, source: srcXapi, copy, record: rec, report });
    report.replacedDisks = rec.replaced ?? [];
    await finish(ctx, { dest, source: srcXapi, copy: copy.rec.uuid, vm: original.rec.uuid, report });
    report.status = 'failed-back';
    await publish(ctx, 'failback succeeded', { ...report });
    return report;
  });
}

/**
 * On the halted original VM: the reverse disks replace its disks (the replaced ones are recorded
 * first), become its own, the fence is lifted, and the copy's final state is committed as a
 * recovery point of a fresh source snapshot. Repeated whole by a retry (each part is idempotent).
 */
async function cutover(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; copy: Ref<VmRecord>; record: FailoverRecord; report: FailbackReport },
): Promise<FailoverRecord> {
  const disks = new Map<string, { ref: string; uuid: string }>();
  for (const [dev, uuid] of Object.entries(x.record.reverseDisks ?? {}))
    disks.set(dev, { ref: await x.source.getByUuid('VDI', uuid), uuid });
  let original = await findVmByUuid(x.source, x.record.vm);
  const reverse = new Set([...disks.values()].map((d) => d.uuid));
  const replacing = (await vmDisks(x.source, original.rec))
    .map((d) => d.vdi.rec.uuid)
    .filter((u) => !reverse.has(u));
  let rec: FailoverRecord = {
    ...x.record,
    replaced: [...new Set([...(x.record.replaced ?? []), ...replacing])],
  };
  await writeCopyRecord(x.dest, x.copy.ref, rec);
  await swapDisks(x.source, original, disks);
  await adoptDisks(x.source, disks);
  original = await findVmByUuid(x.source, x.record.vm);
  await liftFence(x.source, original, ctx.job.id);
  const rp = await findVmByUuid(x.dest, x.record.point).catch(() => undefined);
  x.report.recoveryPoint = await commitFailback(ctx, {
    source: x.source,
    dest: x.dest,
    run: x.report.run,
    original: await findVmByUuid(x.source, x.record.vm),
    reverseSnapshot: x.record.reverseBase!,
    chain: rp ? (Number(rp.rec.other_config[KEY.chain] ?? 0) || 0) + 1 : 0,
  });
  rec = { ...rec, state: 'failed-back' };
  // after the source snapshot (VM.snapshot copies other_config): the source VM says the failback is
  // past its cutover until `finish` removes the record last, so a retry can finish without the copy
  await writeRecord(x.source, original.ref, rec);
  await writeCopyRecord(x.dest, x.copy.ref, rec);
  return rec;
}

/** After the cutover: the original VM starts, the copy and what is left of failback objects go,
 *  then the source VM's failed-back record (the last trace of the failover). */
async function finish(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; copy: string | undefined; vm: string; report: FailbackReport },
) {
  const original = await findVmByUuid(x.source, x.vm);
  if (original.rec.power_state === 'Halted') await x.source.callAsync('VM.start', original.ref, false, false);
  const copy = x.copy && (await findVmByUuid(x.dest, x.copy).catch(() => undefined));
  if (copy) x.report.removed.push(...(await destroyCopy(x.dest, ctx.job.id, copy.rec.uuid)));
  x.report.removed.push(...(await sweepBoth(ctx, x.dest, x.source, x.report.run)));
  if (sourceRecord(original.rec, ctx.job.id)) await writeRecord(x.source, original.ref, undefined);
}

const pastCutover = (r: FailoverRecord) =>
  `an earlier failback of VM ${r.vm} (failover ${r.run}) got past its cutover; this run finished it`;

/** The retry of a failback whose copy went after the cutover: what `finish` had left. */
async function finishFailback(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; vm: Ref<VmRecord>; run: string; planned: boolean },
): Promise<FailbackReport> {
  const rec = sourceRecord(x.vm.rec, ctx.job.id)!;
  const report: FailbackReport = {
    jobId: ctx.job.id,
    run: x.run,
    vm: rec.vm,
    planned: x.planned,
    status: 'failed-back',
    bytes: 0,
    replacedDisks: rec.replaced ?? [],
    removed: [],
    warnings: [pastCutover(rec)],
  };
  await finish(ctx, { dest: x.dest, source: x.source, copy: rec.copy, vm: x.vm.rec.uuid, report });
  await publish(ctx, 'failback succeeded', { ...report });
  return report;
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
