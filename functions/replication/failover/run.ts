/**
 * Failover of a job's VMs to the destination pool, and its undo. Each holds the job's lease under
 * its own run id (so no replication run overlaps it; the planned final delta renews the same lease),
 * sweeps what crashed failover runs left, then works VM by VM: one VM's refusal or failure never
 * stops another. Idempotent by run id: the same run id resumes where an attempt stopped.
 *
 * The work is split into the failover state machine's steps (`failover-begin`, per VM
 * `failover-prepare` → final delta → `failover-clone`, `failover-vm-failed`, `failover-undo`,
 * `failover-end`), each a function over the payloads of `contract.ts`; `runFailover` composes the
 * same functions in process (the undo is in `undo.ts`, what they share around the work in `pools.ts`).
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import { holdLease, type RunContext } from '../context.js';
import { XcrPermanentError } from '../errors.js';
import { findVmByUuid } from '../inventory.js';
import { KEY } from '../metadata.js';
import { listRecoveryPoints } from '../recovery-points.js';
import {
  copyRecord,
  type FailoverRecord,
  failoverRefusal,
  fenceReason,
  sourceRecord,
} from '../rules/failover.js';
import { cbtBaseline } from './cbt-baseline.js';
import {
  clip,
  type FailoverBegun,
  type FailoverEndInput,
  type FailoverInput,
  type FailoverItem,
  type FailoverReport,
  type FailoverVmResult,
  MAX_FAILOVER_VMS,
  NOTHING_LISTED,
  runOf,
} from './contract.js';
import { makeCopy, recordAndStart } from './copy.js';
import { finalDeltaResult, finalDeltaWorkList, replicateVm } from './final-delta.js';
import {
  acquireJobLease,
  codeOf,
  message,
  publish,
  reachableSource,
  releaseOrRethrow,
  sourceVmOf,
  sweepBoth,
  withJobLease,
} from './pools.js';
import { fenceSource } from './records.js';

export interface FailoverOptions {
  run: string;
  vms?: string[] | undefined;
  point?: string | undefined;
  planned?: boolean | undefined;
  start?: boolean | undefined;
  force?: boolean | undefined;
}

export type { FailoverReport, FailoverVmResult };

/** The VMs to act on: those asked for, else every VM the job has recovery points of. */
async function vmsOf(dest: Xapi, jobId: string, asked: string[] | undefined): Promise<string[]> {
  if (asked?.length) return asked;
  const vms = new Set((await listRecoveryPoints(dest, jobId)).map((rp) => rp.rec.other_config[KEY.vm] ?? ''));
  const all = [...vms].filter(Boolean).sort();
  if (all.length > MAX_FAILOVER_VMS)
    throw new XcrPermanentError(
      'TOO_MANY_VMS',
      `job ${jobId} has recovery points of ${all.length} VMs; one failover takes at most ${MAX_FAILOVER_VMS}: fail them over in groups with --vm (input "vms")`,
    );
  return all;
}

/** The source pool for a VM step: probed again only when failover-begin found it answering. */
const sourceOf = (ctx: RunContext, item: FailoverItem) =>
  item.sourceReachable ? reachableSource(ctx) : Promise.resolve(undefined);

/** The VM's DR copies with the first one's record, and the source VM (undefined when gone or lost). */
async function vmNow(dest: Xapi, source: Xapi | undefined, jobId: string, vm: string) {
  const copies = (await sweepRecords(dest)).vms.filter((v) => copyRecord(v, jobId)?.vm === vm);
  return { copies, existing: copies[0] && copyRecord(copies[0], jobId), src: await sourceVmOf(source, vm) };
}

/** The request's options under this run id (what the per-VM functions read). */
const optionsOf = (item: FailoverItem) => ({ ...item.request, run: item.run });

/**
 * failover-prepare: the refusal check; for a VM not failed over yet, the fence on the source VM
 * and, planned, its clean shutdown and the final delta's work list (or the point this run's final
 * delta already committed, on a retry).
 */
export async function prepareFailoverVm(ctx: RunContext, item: FailoverItem): Promise<FailoverItem> {
  await holdLease(ctx, item.run);
  const dest = await ctx.destination();
  const source = await sourceOf(ctx, item);
  const o = optionsOf(item);
  const vmUuid = item.vm;
  const jobId = ctx.job.id;
  const warnings: string[] = [];
  const planned = o.planned === true;
  const { copies, existing, src } = await vmNow(dest, source, jobId, vmUuid);
  const refusal = failoverRefusal({
    jobId,
    vm: vmUuid,
    run: o.run,
    planned,
    force: o.force === true,
    existing,
    existingRunning: copies[0] && copies[0].power_state !== 'Halted',
    sourcePowerState: src?.rec.power_state,
  });
  if (refusal)
    return {
      ...item,
      next: 'refused',
      result: { vm: vmUuid, status: 'refused', code: refusal.code, message: refusal.message, warnings },
    };
  const at = ctx.now().toISOString();
  const name = src?.rec.name_label;
  const base = baseRecord(ctx, { existing, src, run: o.run, vm: vmUuid, planned, at });
  const pool = ctx.job.destination.pool;
  let next: FailoverItem['next'] = 'clone';
  let finalDelta: FailoverVmResult['finalDelta'];
  if (src && !existing) {
    const reason = fenceReason({ copy: '', copyName: name ?? vmUuid, pool, job: jobId, vm: vmUuid });
    await fenceSource(source!, src, base, reason);
    if (planned) {
      const now = await source!.getRecord('VM', src.ref);
      if (now.power_state === 'Running') await shutDownCleanly(source!, src.ref, vmUuid);
      // a retry of this run whose final delta already committed uses that point (never rewrites it)
      const done = (await listRecoveryPoints(dest, jobId, vmUuid)).find(
        (p) => p.rec.other_config[KEY.run] === o.run,
      );
      if (done) finalDelta = { recoveryPoint: done.rec.uuid, bytes: 0, kind: 'delta' };
      else {
        await finalDeltaWorkList(ctx, o.run, vmUuid);
        next = 'final-delta';
      }
    } else if (src.rec.power_state === 'Running') {
      warnings.push(
        `--force: the source VM keeps running on pool "${ctx.job.source.pool}"; its writes since the recovery point are not at the DR copy`,
      );
    }
  }
  return { ...item, at, next, warnings, ...(finalDelta ? { finalDelta } : {}) };
}

/** The VM's failover record before its copy exists: the existing copy's, else a new one of this run. */
function baseRecord(
  ctx: RunContext,
  x: {
    existing: FailoverRecord | undefined;
    src: { rec: VmRecord } | undefined;
    run: string;
    vm: string;
    planned: boolean;
    at: string;
  },
): FailoverRecord {
  const jobId = ctx.job.id;
  const prior = x.src && sourceRecord(x.src.rec, jobId);
  const wasRunning = prior?.run === x.run ? prior.wasRunning : x.src && x.src.rec.power_state === 'Running';
  return (
    x.existing ?? {
      job: jobId,
      vm: x.vm,
      run: x.run,
      point: '',
      copy: '',
      at: x.at,
      planned: x.planned,
      state: 'fencing',
      ...(wasRunning !== undefined ? { wasRunning } : {}),
    }
  );
}

/**
 * failover-clone: the DR copy of the recovery point (the final delta's when planned, the one asked
 * for, else the newest), recorded and started; the source fence then names the copy.
 */
export async function cloneFailoverVm(ctx: RunContext, item: FailoverItem): Promise<FailoverVmResult> {
  await holdLease(ctx, item.run);
  const dest = await ctx.destination();
  const source = await sourceOf(ctx, item);
  const o = optionsOf(item);
  const vmUuid = item.vm;
  const jobId = ctx.job.id;
  const warnings = [...(item.warnings ?? [])];
  const planned = o.planned === true;
  let finalDelta = item.finalDelta;
  if (item.next === 'final-delta' && !finalDelta) {
    const r = await finalDeltaResult(ctx, { jobId, runId: o.run, vmUuid });
    finalDelta = { recoveryPoint: r.recoveryPoint!, bytes: r.bytes, kind: r.kind ?? 'delta' };
  }
  const { existing, src } = await vmNow(dest, source, jobId, vmUuid);
  const name = src?.rec.name_label;
  const prior = src && sourceRecord(src.rec, jobId);
  const wasRunning = prior?.run === o.run ? prior.wasRunning : src && src.rec.power_state === 'Running';
  const at = item.at ?? ctx.now().toISOString();
  const base = baseRecord(ctx, { existing, src, run: o.run, vm: vmUuid, planned, at });
  const pool = ctx.job.destination.pool;
  const points = await listRecoveryPoints(dest, jobId, vmUuid);
  const point = existing?.point || finalDelta?.recoveryPoint || o.point || points[0]?.rec.uuid;
  const rp = points.find((p) => p.rec.uuid === point);
  if (!rp)
    throw new XcrPermanentError(
      'NO_RECOVERY_POINT',
      o.point
        ? `${o.point} is not a complete recovery point of VM ${vmUuid} in job ${jobId} (see "xcr recovery-points ${jobId}")`
        : `job ${jobId} has no complete recovery point of VM ${vmUuid} to fail over to`,
    );
  const copyName = name ?? rp.rec.name_label.replace(/ \(xcr .*\)$/, '');
  const copy = await makeCopy(dest, {
    jobId,
    pool,
    run: existing?.run ?? o.run,
    vm: vmUuid,
    point: rp.rec.uuid,
    name: copyName,
  });
  // only a copy that never ran gets a baseline (a recorded one may have started, and written)
  const cbt = existing?.copy
    ? undefined
    : await cbtBaseline(dest, ctx.job, { jobId, run: existing?.run ?? o.run, copy });
  warnings.push(...(cbt?.notes ?? []));
  const record: FailoverRecord = {
    ...base,
    point: rp.rec.uuid,
    copy,
    state: 'failed-over',
    ...(cbt?.baseline ? { cbtBaseline: cbt.baseline } : {}),
  };
  delete record.prevStart;
  delete record.wasRunning;
  await recordAndStart(dest, copy, record, o.start !== false);
  if (src) {
    const now = await findVmByUuid(source!, vmUuid);
    await fenceSource(
      source!,
      now,
      { ...record, ...(wasRunning !== undefined ? { wasRunning } : {}) },
      fenceReason({ copy, copyName, pool, job: jobId, vm: vmUuid }),
    );
  } else {
    warnings.push(
      `the source pool "${ctx.job.source.pool}" did not answer: the source VM is not fenced; keep it from starting until "xcr failback" (the next failback or undo fences nothing, it checks)`,
    );
  }
  const result: FailoverVmResult = {
    vm: vmUuid,
    status: 'failed-over',
    copy,
    point: rp.rec.uuid,
    ...(finalDelta ? { finalDelta } : {}),
    warnings,
  };
  await publish(ctx, 'failover succeeded', { run: o.run, planned, ...result });
  return result;
}

/** failover-vm-failed: one VM's failure (a Catch's, or a thrown error in process) as its result. */
export async function failedFailoverVm(
  ctx: RunContext,
  item: Pick<FailoverItem, 'run' | 'vm'>,
  failure: { code: string; message: string },
): Promise<FailoverVmResult> {
  const result: FailoverVmResult = {
    vm: item.vm,
    status: 'failed',
    code: failure.code,
    message: clip(failure.message),
    warnings: [],
  };
  await publish(ctx, 'failover failed', { run: item.run, vm: item.vm, message: result.message });
  return result;
}

async function shutDownCleanly(source: Xapi, ref: string, vmUuid: string): Promise<void> {
  try {
    await source.callAsync('VM.clean_shutdown', ref);
  } catch (err) {
    if (codeOf(err) === 'VM_LACKS_FEATURE')
      throw new XcrPermanentError(
        'CLEAN_SHUTDOWN_IMPOSSIBLE',
        `VM ${vmUuid} has no guest agent, so it cannot be shut down cleanly for a planned failover; shut it down from inside the guest and run the failover again (it is fenced meanwhile)`,
      );
    throw err;
  }
}

/**
 * failover-begin: the job's lease under the run id (JOB_BUSY while a run holds it), leftovers of
 * crashed failover runs swept, the VMs to act on listed (undo: only the lease).
 */
export async function beginFailover(
  ctx: RunContext,
  input: { executionName: string; request: FailoverInput },
): Promise<FailoverBegun> {
  const { request } = input;
  const run = runOf(input.executionName, request);
  await acquireJobLease(ctx, run);
  const begun = {
    jobId: ctx.job.id,
    run,
    planned: request.planned === true,
    sourceReachable: false,
    vms: [],
    removed: NOTHING_LISTED,
    request,
  };
  if (request.undo) return begun;
  const dest = await ctx.destination();
  const source = await reachableSource(ctx);
  const removed = await sweepBoth(ctx, dest, source, run);
  return {
    ...begun,
    sourceReachable: source !== undefined,
    removed,
    vms: await vmsOf(dest, ctx.job.id, request.vms),
  };
}

/**
 * failover-end: the lease released whatever happened; the report of what reached it. A failure
 * before or around the VM steps is published as `xcr failover failed` and thrown again (the
 * execution fails with it, each VM's own failure is in its result).
 */
export async function endFailover(ctx: RunContext, input: FailoverEndInput): Promise<FailoverReport> {
  const { state } = input;
  const run = await releaseOrRethrow(ctx, 'failover', input);
  if (state.report) return state.report;
  return {
    jobId: ctx.job.id,
    run,
    planned: state.planned === true,
    vms: state.results ?? [],
    removed: state.removed ?? NOTHING_LISTED,
  };
}

/** One VM in process: what the Map iteration of the state machine does, by the same functions. */
async function failoverVm(ctx: RunContext, begun: FailoverBegun, vm: string): Promise<FailoverVmResult> {
  let item: FailoverItem = { ...begun, vm };
  try {
    item = await prepareFailoverVm(ctx, item);
    if (item.next === 'refused') return item.result!;
    if (item.next === 'final-delta') {
      const r = await replicateVm(ctx, {
        jobId: ctx.job.id,
        runId: item.run,
        vmUuid: vm,
        startedAt: item.at!,
      });
      item = {
        ...item,
        finalDelta: { recoveryPoint: r.recoveryPoint!, bytes: r.bytes, kind: r.kind ?? 'delta' },
      };
    }
    return await cloneFailoverVm(ctx, item);
  } catch (err) {
    return failedFailoverVm(ctx, item, { code: codeOf(err), message: message(err) });
  }
}

/** `xcr failover`: fails the job's VMs (or those asked for) over to the destination pool. */
export async function runFailover(ctx: RunContext, o: FailoverOptions): Promise<FailoverReport> {
  return withJobLease(ctx, o.run, async () => {
    const begun = await beginFailover(ctx, { executionName: o.run, request: requestOf(ctx, o) });
    const report: FailoverReport = {
      jobId: ctx.job.id,
      run: o.run,
      planned: begun.planned,
      vms: [],
      removed: begun.removed,
    };
    for (const vm of begun.vms) report.vms.push(await failoverVm(ctx, begun, vm));
    return report;
  });
}

/** The execution input of these options (undefined fields left out, as JSON would). */
function requestOf(ctx: RunContext, o: FailoverOptions): FailoverInput {
  const r: FailoverInput = { jobId: ctx.job.id, run: o.run };
  if (o.vms?.length) r.vms = o.vms;
  if (o.point !== undefined) r.point = o.point;
  if (o.planned !== undefined) r.planned = o.planned;
  if (o.start !== undefined) r.start = o.start;
  if (o.force !== undefined) r.force = o.force;
  return r;
}
