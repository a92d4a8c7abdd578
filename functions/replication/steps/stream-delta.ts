import type { Xapi } from '../../xapi/index.js';
import { transferCbtChunk } from '../cbt-transfer.js';
import { holdLease, type RunContext } from '../context.js';
import type { DiskPlan, VmRunState } from '../contract.js';
import { streamDisk } from '../transfer.js';

/**
 * Transfers the next disk that is not done yet (one disk per invocation, so the state machine's
 * loop gives every disk a full Lambda time budget) and reports whether all disks are done.
 */
export async function streamDelta(ctx: RunContext, state: VmRunState): Promise<VmRunState> {
  const next = state.disks.find((d) => !d.done);
  if (!next) return { ...state, done: true };
  await holdLease(ctx, state.runId);
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const [vdi, base, target] = await Promise.all([
    source.getByUuid('VDI', next.sourceVdi),
    next.baseVdi ? source.getByUuid('VDI', next.baseVdi) : undefined,
    destination.getByUuid('VDI', next.targetVdi),
  ]);
  if (next.mode === 'cbt')
    return streamCbtChunk(ctx, state, next, { vdi, base, target, source, destination });
  const started = Date.now();
  const bytes = await streamDisk({
    source,
    destination,
    vdi,
    base,
    target,
    targetSize: next.virtualSize,
    bytesPerSecond: ctx.job.bandwidthLimitMBps ? ctx.job.bandwidthLimitMBps * 1e6 : undefined,
    timeoutMs: ctx.job.transferTimeoutSec * 1000,
    onProgress: (sent, total) =>
      ctx.progress?.({ vmUuid: state.vmUuid, userdevice: next.userdevice, bytes: sent, total }),
  });
  const seconds = (Date.now() - started) / 1000;
  ctx.logger.info('disk transferred', {
    vmUuid: state.vmUuid,
    userdevice: next.userdevice,
    kind: next.kind,
    bytes,
    mbPerSecond: Number((bytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(1)),
  });
  const disks = state.disks.map((d) => (d === next ? { ...d, bytes, done: true } : d));
  return { ...state, disks, done: disks.every((d) => d.done) };
}

const MiB = 2 ** 20;
/** An invocation stops starting uploads after this long (Lambda allows 15 minutes in all). */
const CBT_TIME_BUDGET_MS = 10 * 60 * 1000;

/**
 * cbt mode: sends the next piece (at most cbtChunkMiB of data) of one disk and moves its cursor; the
 * disk is done when no extent remains past the cursor, so the state machine loops until then.
 */
async function streamCbtChunk(
  ctx: RunContext,
  state: VmRunState,
  disk: DiskPlan,
  x: { vdi: string; base: string | undefined; target: string; source: Xapi; destination: Xapi },
): Promise<VmRunState> {
  const started = Date.now();
  const timeoutMs = ctx.job.transferTimeoutSec * 1000;
  const r = await transferCbtChunk({
    source: x.source,
    destination: x.destination,
    vdi: x.vdi,
    base: x.base,
    target: x.target,
    virtualSize: disk.virtualSize,
    imageFormat: disk.imageFormat ?? 'vhd',
    cursor: disk.cursor ?? 0,
    budgetBytes: ctx.job.cbtChunkMiB * MiB,
    budgetMs: Math.min(CBT_TIME_BUDGET_MS, timeoutMs / 2),
    timeoutMs,
    onProgress: (bytes, total) =>
      ctx.progress?.({
        vmUuid: state.vmUuid,
        userdevice: disk.userdevice,
        bytes: disk.bytes + bytes,
        total: disk.bytes + total,
      }),
    onRetry: (err, attempt) =>
      ctx.logger.warn('cbt upload failed; sending it again', {
        vmUuid: state.vmUuid,
        userdevice: disk.userdevice,
        attempt,
        error: err.message,
      }),
  });
  const seconds = (Date.now() - started) / 1000;
  if (r.interrupted) {
    ctx.logger.warn('cbt transfer interrupted; the next invocation resumes at the cursor', {
      vmUuid: state.vmUuid,
      userdevice: disk.userdevice,
      cursor: r.cursor,
      error: r.interrupted.message,
    });
  }
  ctx.logger.info(r.done ? 'disk transferred' : 'disk chunk transferred', {
    vmUuid: state.vmUuid,
    userdevice: disk.userdevice,
    kind: disk.kind,
    mode: 'cbt',
    bytes: r.bytes,
    uploads: r.uploads,
    cursor: r.cursor,
    remainingBytes: r.remaining,
    mbPerSecond: Number((r.bytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(1)),
  });
  const updated: DiskPlan = { ...disk, bytes: disk.bytes + r.bytes, cursor: r.cursor, done: r.done };
  const disks = state.disks.map((d) => (d === disk ? updated : d));
  return { ...state, disks, done: disks.every((d) => d.done) };
}
