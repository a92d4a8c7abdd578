import type { VmRecord, Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import { holdLease, type RunContext } from '../context.js';
import { XcrRefusal } from '../errors.js';
import { copyRecord, sourceRecord, undoRefusal } from '../rules/failover.js';
import { type FailoverReport, type FailoverVmResult, NOTHING_LISTED } from './contract.js';
import { destroyCopy } from './copy.js';
import { message, noteRemoved, publish, sourceVmOf, sweepBoth, withJobLease } from './pools.js';
import { liftFence } from './records.js';

/**
 * `xcr failover --undo`: destroys the DR copy (its writes are given up), lifts the fence, starts
 * the source VM again if the failover had shut it down; replication resumes as a delta from the
 * last recovery point (its base snapshot on the source was never touched).
 */
export async function undoFailover(ctx: RunContext, o: { run: string; vm: string }): Promise<FailoverReport> {
  return withJobLease(ctx, o.run, () => undoStep(ctx, o));
}

/** failover-undo: the undo itself, under the lease failover-begin took. */
export async function undoStep(ctx: RunContext, o: { run: string; vm: string }): Promise<FailoverReport> {
  await holdLease(ctx, o.run);
  {
    const dest = await ctx.destination();
    const source = await ctx.source().catch((err: unknown) => {
      throw new XcrRefusal(
        'SOURCE_UNREACHABLE',
        `undo resumes the VM at the source pool "${ctx.job.source.pool}", which does not answer (${message(err)}); the DR copy stays as it is`,
      );
    });
    const report: FailoverReport = {
      jobId: ctx.job.id,
      run: o.run,
      planned: false,
      vms: [],
      removed: NOTHING_LISTED,
    };
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
    if (copy)
      report.removed = noteRemoved(
        ctx,
        'removed the DR copy',
        await destroyCopy(dest, ctx.job.id, copy.uuid),
      );
    report.removed = await sweepBoth(ctx, dest, source, o.run, report.removed);
    if (src) await resumeSource(source, src, ctx.job.id);
    const result: FailoverVmResult = { vm: o.vm, status: 'undone', warnings: [] };
    if (copy) result.copy = copy.uuid;
    report.vms.push(result);
    await publish(ctx, 'failover undone', { run: o.run, vm: o.vm, removed: report.removed });
    return report;
  }
}

/** Lifts the fence and starts the source VM when the failover had shut it down. */
async function resumeSource(source: Xapi, src: { ref: string; rec: VmRecord }, jobId: string) {
  const r = sourceRecord(src.rec, jobId);
  await liftFence(source, src, jobId);
  const ps = (await source.getRecord('VM', src.ref)).power_state;
  if (r?.planned && r.wasRunning && ps === 'Halted')
    await source.callAsync('VM.start', src.ref, false, false);
}
