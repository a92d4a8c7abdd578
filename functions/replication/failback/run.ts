/**
 * `xcr failback`: reverse replication of a failed-over VM's DR copy into its original VM.
 * Without --planned it sends the copy's changes so far while the copy keeps running (a pre-sync:
 * the next failback sends only what changed since). With --planned it shuts the copy down, sends
 * the final delta, puts the reverse disks under the halted original VM, records the copy's final
 * state as a recovery point, lifts the fence, starts the original and removes the copy. Holds the
 * job lease; resumable by run id; the copy's record says how far a failback got.
 *
 * The work is split into the failback state machine's steps (`failback-begin`, `failback-sync`
 * once per disk, `failback-cutover`, `failback-finish`, `failback-end`), each a function over the
 * payload of `contract.ts` that renews the job lease; `runFailback` composes them in process.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import { holdLease, type RunContext } from '../context.js';
import { XcrPermanentError, XcrRefusal } from '../errors.js';
import {
  type FailbackEndInput,
  type FailbackInput,
  type FailbackReport,
  type FailbackState,
  NOTHING_LISTED,
  runOf,
} from '../failover/contract.js';
import { destroyCopy } from '../failover/copy.js';
import {
  acquireJobLease,
  noteRemoved,
  publish,
  reachableSource,
  releaseOrRethrow,
  sweepBoth,
  withJobLease,
} from '../failover/pools.js';
import { findFailedBack, liftFence, writeCopyRecord, writeRecord } from '../failover/records.js';
import { findSr, findVmByUuid, type Ref, vmDisks } from '../inventory.js';
import { KEY } from '../metadata.js';
import { copyRecord, type FailoverRecord, failbackRefusal, sourceRecord } from '../rules/failover.js';
import { findExportedBase } from '../snapshot.js';
import { adoptDisks, commitFailback, requireCbt, swapDisks } from './cutover.js';
import { cutoverToNewVm } from './new-vm.js';
import { syncReverse } from './reverse.js';

export interface FailbackOptions {
  run: string;
  vm: string;
  planned?: boolean | undefined;
  /** Source-pool SR (uuid or name) for new disks where the original VM has none (default: the pool's default SR). */
  sr?: string | undefined;
}

export type { FailbackReport };

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

/** `xcr failback`: the state machine's steps in process, under the job lease. */
export async function runFailback(ctx: RunContext, o: FailbackOptions): Promise<FailbackReport> {
  return withJobLease(ctx, o.run, async () => {
    const request: FailbackInput = {
      jobId: ctx.job.id,
      run: o.run,
      vm: o.vm,
      planned: o.planned === true,
      ...(o.sr ? { sr: o.sr } : {}),
    };
    let state = await beginFailback(ctx, { executionName: o.run, request });
    while (state.phase === 'sync') state = await syncFailback(ctx, state);
    if (state.phase === 'cutover') state = await cutoverFailback(ctx, state);
    if (state.phase === 'finish') state = await finishFailback(ctx, state);
    return reportOf(ctx, state);
  });
}

/** The copy of the VM and its record, the original VM (undefined when gone or the source is lost). */
async function targetsOf(ctx: RunContext, dest: Xapi, source: Xapi | undefined, vm: string) {
  const copyVm = (await sweepRecords(dest)).vms.find((v) => copyRecord(v, ctx.job.id)?.vm === vm);
  const record = copyVm && copyRecord(copyVm, ctx.job.id);
  const original = source
    ? await findVmByUuid(source, vm).catch((err: unknown) => {
        if ((err as { code?: string }).code === 'VM_NOT_FOUND') return undefined;
        throw err;
      })
    : undefined;
  return { copyVm, record, original };
}

/** The next phase of a failback by the copy's record (a resumed run goes on where one stopped). */
const phaseOf = (record: FailoverRecord): FailbackState['phase'] =>
  record.state === 'failed-over' ? 'sync' : record.state === 'cutover' ? 'cutover' : 'finish';

/**
 * failback-begin: the job lease under the run id, the refusals, leftovers swept; planned, the copy
 * shut down cleanly before its final reverse delta. A failback past its cutover whose copy is gone
 * is finished here.
 */
export async function beginFailback(
  ctx: RunContext,
  input: { executionName: string; request: FailbackInput },
): Promise<FailbackState> {
  const jobId = ctx.job.id;
  const o = { ...input.request, run: runOf(input.executionName, input.request) };
  const planned = o.planned === true;
  await acquireJobLease(ctx, o.run);
  const dest = await ctx.destination();
  const source = await reachableSource(ctx);
  const { copyVm, record, original } = await targetsOf(ctx, dest, source, o.vm);
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
  if (refusal) throw new XcrRefusal(refusal.code, refusal.message);
  if (finished) return finishPastCutover(ctx, { dest, source: source!, vm: finished, run: o.run, planned });
  const state: FailbackState = {
    jobId,
    run: o.run,
    vm: o.vm,
    planned,
    ...(o.sr ? { sr: o.sr } : {}),
    phase: phaseOf(record!),
    disk: 0,
    bytes: 0,
    removed: await sweepBoth(ctx, dest, source, o.run),
    warnings: [],
  };
  const srcXapi = source!;
  const copy = await findVmByUuid(dest, copyVm!.uuid);
  const rec = record!;
  if (rec.state === 'failed-back') state.warnings.push(pastCutover(rec));
  if (!original) state.warnings.push(originalGone(o.vm, planned));
  if (rec.state === 'failed-over') {
    const base = original
      ? await baseOf(srcXapi, dest, jobId, rec, original)
      : { disks: undefined, warning: undefined };
    if (base.warning && !rec.reverseBase) {
      state.warnings.push(base.warning);
      ctx.logger.warn(base.warning, { vmUuid: o.vm });
    }
    if (planned) await shutDownCopy(dest, copy);
  }
  return state;
}

/** The pools, the copy, its record and the original VM (if any) for a step after begin (lease renewed). */
async function resume(ctx: RunContext, state: FailbackState) {
  await holdLease(ctx, state.run);
  const dest = await ctx.destination();
  const source = await ctx.source();
  const { copyVm, record, original } = await targetsOf(ctx, dest, source, state.vm);
  if (!copyVm || !record)
    throw new XcrPermanentError(
      'FAILBACK_TARGET_GONE',
      `the DR copy of VM ${state.vm} went away during failback ${state.run}; run the failback again (a run past its cutover finishes), or see "xcr inspect ${ctx.job.id}"`,
    );
  return { dest, source, copy: await findVmByUuid(dest, copyVm.uuid), rec: record, original };
}

/**
 * failback-sync: one disk of the reverse delta (the disk at `state.disk` of this run's reverse
 * snapshot of the copy); after the last one the copy's record names the new reverse base, and
 * planned, the reverse disks (the cutover comes next).
 */
export async function syncFailback(ctx: RunContext, state: FailbackState): Promise<FailbackState> {
  const { dest, source: srcXapi, copy, rec: record, original } = await resume(ctx, state);
  const jobId = ctx.job.id;
  const { planned } = state;
  let rec = record;
  if (rec.state !== 'failed-over') return { ...state, phase: phaseOf(rec) };
  const base = original
    ? await baseOf(srcXapi, dest, jobId, rec, original)
    : { disks: undefined, warning: undefined };
  const sync = await syncReverse(ctx, {
    dest,
    source: srcXapi,
    run: state.run,
    record: rec,
    copy,
    base: base.disks,
    originalDisks: original ? await vmDisks(srcXapi, original.rec) : [],
    sr: state.sr ? await findSr(srcXapi, selectorOf(state.sr), '--sr', 'source') : undefined,
    only: state.disk,
    cursor: state.cursor,
  });
  const { cursor: _cursor, ...rest } = state;
  const sent = { ...rest, bytes: state.bytes + sync.bytes, warnings: [...state.warnings, ...sync.notes] };
  for (const note of sync.notes) ctx.logger.warn(note, { vmUuid: state.vm });
  if (!sync.done) return { ...sent, cursor: sync.cursor ?? 0 };
  const next = { ...sent, disk: state.disk + 1, disks: sync.diskCount };
  if (next.disk < sync.diskCount) return next;
  const old = rec.reverseBase;
  rec = {
    ...rec,
    reverseRun: sync.reverseRun,
    reverseBase: sync.snapshot,
    reverseBaseRun: state.run,
    ...(planned
      ? {
          state: 'cutover' as const,
          reverseDisks: Object.fromEntries([...sync.disks].map(([dev, d]) => [dev, d.uuid])),
        }
      : {}),
  };
  await writeCopyRecord(dest, copy.ref, rec);
  if (old && old !== sync.snapshot) await destroySnapshot(dest, old);
  return { ...next, phase: planned ? 'cutover' : 'synced' };
}

/**
 * failback-cutover: the reverse disks under the halted original VM (or, the original gone, a new
 * VM of them), the copy's final state a recovery point.
 */
export async function cutoverFailback(ctx: RunContext, state: FailbackState): Promise<FailbackState> {
  const { dest, source, copy, rec, original } = await resume(ctx, state);
  if (rec.state !== 'cutover') return { ...state, phase: phaseOf(rec) };
  const report: FailbackState = { ...state, warnings: [...state.warnings] };
  if (original) {
    const done = await cutover(ctx, { dest, source, copy, record: rec, report });
    return { ...report, phase: phaseOf(done) };
  }
  const made = await cutoverToNewVm(ctx, {
    dest,
    source,
    copy,
    record: rec,
    run: state.run,
    chain: await chainAfter(dest, rec),
  });
  report.recoveryPoint = made.recoveryPoint;
  report.warnings.push(...made.notes);
  for (const note of made.notes) ctx.logger.warn(note, { vmUuid: state.vm });
  return { ...report, phase: phaseOf(made.record) };
}

/** failback-finish: the VM started, the copy and this failback's leftovers removed, the source record last. */
export async function finishFailback(ctx: RunContext, state: FailbackState): Promise<FailbackState> {
  const { dest, source, copy, rec, original } = await resume(ctx, state);
  const report: FailbackState = {
    ...state,
    replacedDisks: rec.replaced ?? [],
    ...(rec.newVm ? { newVm: rec.newVm } : {}),
  };
  await finish(ctx, { dest, source, copy: copy.rec.uuid, vm: original?.rec.uuid ?? rec.newVm!, report });
  return { ...report, phase: 'failed-back' };
}

/** The report of a failback that got through (synced, or failed back), published. */
async function reportOf(ctx: RunContext, state: FailbackState): Promise<FailbackReport> {
  const { phase, disk: _disk, disks: _disks, sr: _sr, cursor: _cursor, ...rest } = state;
  const report: FailbackReport = { ...rest, status: phase === 'synced' ? 'synced' : 'failed-back' };
  await publish(ctx, report.status === 'synced' ? 'failback synced' : 'failback succeeded', { ...report });
  return report;
}

/**
 * failback-end: the lease released whatever happened; a failure published as `xcr failback
 * failed` and thrown again (the execution fails with it), else the report published.
 */
export async function endFailback(ctx: RunContext, input: FailbackEndInput): Promise<FailbackReport> {
  await releaseOrRethrow(ctx, 'failback', input);
  return reportOf(ctx, input.state as unknown as FailbackState);
}

/**
 * On the halted original VM: the reverse disks replace its disks (the replaced ones are recorded
 * first), become its own, the fence is lifted, and the copy's final state is committed as a
 * recovery point of a fresh source snapshot. Repeated whole by a retry (each part is idempotent).
 */
async function cutover(
  ctx: RunContext,
  x: {
    dest: Xapi;
    source: Xapi;
    copy: Ref<VmRecord>;
    record: FailoverRecord;
    report: Pick<FailbackState, 'run' | 'recoveryPoint' | 'warnings'>;
  },
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
  await requireCbt(x.source, disks, ctx.job);
  await writeCopyRecord(x.dest, x.copy.ref, rec);
  await swapDisks(x.source, original, disks);
  x.report.warnings.push(...(await adoptDisks(x.source, disks, ctx.job.enableCbt)));
  original = await findVmByUuid(x.source, x.record.vm);
  await liftFence(x.source, original, ctx.job.id);
  x.report.recoveryPoint = await commitFailback(ctx, {
    source: x.source,
    dest: x.dest,
    run: x.report.run,
    original: await findVmByUuid(x.source, x.record.vm),
    reverseSnapshot: x.record.reverseBase!,
    chain: await chainAfter(x.dest, x.record),
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
  x: {
    dest: Xapi;
    source: Xapi;
    copy: string | undefined;
    vm: string;
    report: Pick<FailbackState, 'run' | 'removed'>;
  },
) {
  const original = await findVmByUuid(x.source, x.vm);
  if (original.rec.power_state === 'Halted') await x.source.callAsync('VM.start', original.ref, false, false);
  const copy = x.copy && (await findVmByUuid(x.dest, x.copy).catch(() => undefined));
  if (copy)
    x.report.removed = noteRemoved(
      ctx,
      'removed the DR copy',
      await destroyCopy(x.dest, ctx.job.id, copy.rec.uuid),
      x.report.removed,
    );
  x.report.removed = await sweepBoth(ctx, x.dest, x.source, x.report.run, x.report.removed);
  if (sourceRecord(original.rec, ctx.job.id)) await writeRecord(x.source, original.ref, undefined);
}

/** The chain count of the copy's final state: one after the recovery point the copy was cloned from. */
async function chainAfter(dest: Xapi, r: FailoverRecord): Promise<number> {
  const rp = await findVmByUuid(dest, r.point).catch(() => undefined);
  return rp ? (Number(rp.rec.other_config[KEY.chain] ?? 0) || 0) + 1 : 0;
}

const selectorOf = (v: string) => (/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(v) ? { uuid: v } : { name: v });

const originalGone = (vm: string, planned: boolean) =>
  `the original VM ${vm} is gone from the source pool, so ${planned ? 'the failback makes a new VM there from a full copy of the DR copy' : 'the reverse sync sends the whole disks into new disks; the planned failback makes a new VM of them'}`;

const pastCutover = (r: FailoverRecord) =>
  `an earlier failback of VM ${r.vm} (failover ${r.run}) got past its cutover; this run finished it`;

/** The retry of a failback whose copy went after the cutover: what `finish` had left. */
async function finishPastCutover(
  ctx: RunContext,
  x: { dest: Xapi; source: Xapi; vm: Ref<VmRecord>; run: string; planned: boolean },
): Promise<FailbackState> {
  const rec = sourceRecord(x.vm.rec, ctx.job.id)!;
  const state: FailbackState = {
    jobId: ctx.job.id,
    run: x.run,
    vm: rec.vm,
    planned: x.planned,
    phase: 'failed-back',
    disk: 0,
    bytes: 0,
    replacedDisks: rec.replaced ?? [],
    removed: NOTHING_LISTED,
    warnings: [pastCutover(rec)],
  };
  await finish(ctx, { dest: x.dest, source: x.source, copy: rec.copy, vm: x.vm.rec.uuid, report: state });
  return state;
}

async function destroySnapshot(dest: Xapi, uuid: string): Promise<void> {
  const snap = await findVmByUuid(dest, uuid).catch(() => undefined);
  if (!snap) return;
  const disks = await vmDisks(dest, snap.rec);
  await dest.destroy('VM', snap.ref);
  for (const d of disks) await dest.destroy('VDI', d.vdi.ref);
}
