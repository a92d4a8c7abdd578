/**
 * Failover of a job's VMs to the destination pool, and its undo. Each holds the job's lease under
 * its own run id (so no replication run overlaps it; the planned final delta renews the same lease),
 * sweeps what crashed failover runs left, then works VM by VM: one VM's refusal or failure never
 * stops another. Idempotent by run id: the same run id resumes where an attempt stopped.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import { LEASE_TTL_MS, leaseKey, type RunContext } from '../context.js';
import { XcrPermanentError, XcrRefusal } from '../errors.js';
import { findVmByUuid } from '../inventory.js';
import { KEY } from '../metadata.js';
import { listRecoveryPoints } from '../recovery-points.js';
import {
  copyRecord,
  type FailoverRecord,
  failoverRefusal,
  fenceReason,
  sourceRecord,
  undoRefusal,
} from '../rules/failover.js';
import { destroyCopy, keptRuns, makeCopy, recordAndStart, sweepFailoverLeftovers } from './copy.js';
import { replicateVm } from './final-delta.js';
import { fenceSource, liftFence } from './records.js';

export interface FailoverOptions {
  run: string;
  vms?: string[] | undefined;
  point?: string | undefined;
  planned?: boolean | undefined;
  start?: boolean | undefined;
  force?: boolean | undefined;
}

export interface FailoverVmResult {
  vm: string;
  status: 'failed-over' | 'refused' | 'failed' | 'undone';
  copy?: string;
  point?: string;
  /** planned: the final delta's recovery point and bytes */
  finalDelta?: { recoveryPoint: string; bytes: number; kind: string };
  code?: string;
  message?: string;
  warnings: string[];
}

export interface FailoverReport {
  jobId: string;
  run: string;
  planned: boolean;
  vms: FailoverVmResult[];
  removed: string[];
}

const SOURCE_PROBE_MS = 15_000;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const codeOf = (err: unknown) => String((err as { code?: unknown }).code ?? (err as Error).name);

/** The source pool, or undefined when it does not answer within the probe time (a lost site). */
export async function reachableSource(ctx: RunContext): Promise<Xapi | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), SOURCE_PROBE_MS);
  });
  try {
    return await Promise.race([ctx.source(), timeout]);
  } catch (err) {
    ctx.logger.warn('the source pool does not answer', { error: message(err) });
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

async function sourceVmOf(source: Xapi | undefined, vm: string) {
  if (!source) return undefined;
  try {
    return await findVmByUuid(source, vm);
  } catch (err) {
    if (codeOf(err) === 'VM_NOT_FOUND') return undefined;
    throw err;
  }
}

/** Holds the job's lease for `fn`, refusing (not queueing) while a run or another failover holds it. */
export async function withJobLease<T>(ctx: RunContext, run: string, fn: () => Promise<T>): Promise<T> {
  const lease = await ctx.leases.acquire(leaseKey(ctx.job.id), run, LEASE_TTL_MS);
  if (!lease.acquired)
    throw new XcrRefusal(
      'JOB_BUSY',
      `run ${lease.holder} of job ${ctx.job.id} holds the job (lease until ${lease.expiresAt.toISOString()}); wait for it to end, or clear a dead one with "xcr unlock ${ctx.job.id}"`,
    );
  try {
    return await fn();
  } finally {
    await ctx.leases.release(leaseKey(ctx.job.id), run);
  }
}

/** Removes crashed failover/failback runs' leftovers on both pools (the source only when it answers). */
export async function sweepBoth(ctx: RunContext, dest: Xapi, source: Xapi | undefined, liveRun: string) {
  const keep = await keptRuns(dest, ctx.job.id);
  const removed = await sweepFailoverLeftovers(dest, ctx.job.id, { liveRun, keep });
  if (source) removed.push(...(await sweepFailoverLeftovers(source, ctx.job.id, { liveRun, keep })));
  if (removed.length) ctx.logger.warn('removed leftovers of interrupted failover runs', { removed });
  return removed;
}

/** The VMs to act on: those asked for, else every VM the job has recovery points of. */
async function vmsOf(dest: Xapi, jobId: string, asked: string[] | undefined): Promise<string[]> {
  if (asked?.length) return asked;
  const vms = new Set((await listRecoveryPoints(dest, jobId)).map((rp) => rp.rec.other_config[KEY.vm] ?? ''));
  return [...vms].filter(Boolean).sort();
}

async function publish(ctx: RunContext, what: string, detail: Record<string, unknown>) {
  await ctx.events.publishEvent?.(`xcr ${what}`, { jobId: ctx.job.id, ...detail });
}

async function failoverOne(
  ctx: RunContext,
  dest: Xapi,
  source: Xapi | undefined,
  vmUuid: string,
  o: FailoverOptions,
): Promise<FailoverVmResult> {
  const jobId = ctx.job.id;
  const warnings: string[] = [];
  const planned = o.planned === true;
  const copies = (await sweepRecords(dest)).vms.filter((v) => copyRecord(v, jobId)?.vm === vmUuid);
  const existing = copies[0] && copyRecord(copies[0], jobId);
  const src = await sourceVmOf(source, vmUuid);
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
    return { vm: vmUuid, status: 'refused', code: refusal.code, message: refusal.message, warnings };
  const at = ctx.now().toISOString();
  const name = src?.rec.name_label;
  const prior = src && sourceRecord(src.rec, jobId);
  const wasRunning = prior?.run === o.run ? prior.wasRunning : src && src.rec.power_state === 'Running';
  const base: FailoverRecord = existing ?? {
    job: jobId,
    vm: vmUuid,
    run: o.run,
    point: '',
    copy: '',
    at,
    planned,
    state: 'fencing',
    ...(wasRunning !== undefined ? { wasRunning } : {}),
  };
  const pool = ctx.job.destination.pool;
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
        const r = await replicateVm(ctx, { jobId, runId: o.run, vmUuid, startedAt: at });
        finalDelta = { recoveryPoint: r.recoveryPoint!, bytes: r.bytes, kind: r.kind ?? 'delta' };
      }
    } else if (src.rec.power_state === 'Running') {
      warnings.push(
        `--force: the source VM keeps running on pool "${ctx.job.source.pool}"; its writes since the recovery point are not at the DR copy`,
      );
    }
  }
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
  const record: FailoverRecord = { ...base, point: rp.rec.uuid, copy, state: 'failed-over' };
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

/** `xcr failover`: fails the job's VMs (or those asked for) over to the destination pool. */
export async function runFailover(ctx: RunContext, o: FailoverOptions): Promise<FailoverReport> {
  return withJobLease(ctx, o.run, async () => {
    const dest = await ctx.destination();
    const source = await reachableSource(ctx);
    const report: FailoverReport = {
      jobId: ctx.job.id,
      run: o.run,
      planned: o.planned === true,
      vms: [],
      removed: [],
    };
    report.removed.push(...(await sweepBoth(ctx, dest, source, o.run)));
    for (const vm of await vmsOf(dest, ctx.job.id, o.vms)) {
      try {
        report.vms.push(await failoverOne(ctx, dest, source, vm, o));
      } catch (err) {
        report.vms.push({ vm, status: 'failed', code: codeOf(err), message: message(err), warnings: [] });
        await publish(ctx, 'failover failed', { run: o.run, vm, message: message(err) });
      }
    }
    return report;
  });
}

/**
 * `xcr failover --undo`: destroys the DR copy (its writes are given up), lifts the fence, starts
 * the source VM again if the failover had shut it down; replication resumes as a delta from the
 * last recovery point (its base snapshot on the source was never touched).
 */
export async function undoFailover(ctx: RunContext, o: { run: string; vm: string }): Promise<FailoverReport> {
  return withJobLease(ctx, o.run, async () => {
    const dest = await ctx.destination();
    const source = await ctx.source().catch((err: unknown) => {
      throw new XcrRefusal(
        'SOURCE_UNREACHABLE',
        `undo resumes the VM at the source pool "${ctx.job.source.pool}", which does not answer (${message(err)}); the DR copy stays as it is`,
      );
    });
    const report: FailoverReport = { jobId: ctx.job.id, run: o.run, planned: false, vms: [], removed: [] };
    const copy = (await sweepRecords(dest)).vms.find((v) => copyRecord(v, ctx.job.id)?.vm === o.vm);
    const src = await sourceVmOf(source, o.vm);
    const srcRecord = src && sourceRecord(src.rec, ctx.job.id);
    const refusal = undoRefusal({
      jobId: ctx.job.id,
      vm: o.vm,
      copy: copy && copyRecord(copy, ctx.job.id),
      source: srcRecord,
    });
    if (refusal) throw new XcrRefusal(refusal.code, refusal.message);
    if (copy) report.removed.push(...(await destroyCopy(dest, ctx.job.id, copy.uuid)));
    report.removed.push(...(await sweepBoth(ctx, dest, source, o.run)));
    if (src) await resumeSource(source, src, ctx.job.id);
    const result: FailoverVmResult = { vm: o.vm, status: 'undone', warnings: [] };
    if (copy) result.copy = copy.uuid;
    report.vms.push(result);
    await publish(ctx, 'failover undone', { run: o.run, vm: o.vm, removed: report.removed });
    return report;
  });
}

/** Lifts the fence and starts the source VM when the failover had shut it down. */
async function resumeSource(source: Xapi, src: { ref: string; rec: VmRecord }, jobId: string) {
  const r = sourceRecord(src.rec, jobId);
  await liftFence(source, src, jobId);
  const ps = (await source.getRecord('VM', src.ref)).power_state;
  if (r?.planned && r.wasRunning && ps === 'Halted')
    await source.callAsync('VM.start', src.ref, false, false);
}
