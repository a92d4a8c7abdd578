import type { Xapi } from '../../xapi/index.js';
import { cbtBudget, transferCbtChunk } from '../cbt-transfer.js';
import { holdLease, type RunContext } from '../context.js';
import type { DiskPlan, VmRunState } from '../contract.js';
import { withStreamSlot } from '../stream-slots.js';
import { streamDisk } from '../transfer.js';

interface Sides {
  source: Xapi;
  destination: Xapi;
}

/**
 * Transfers the next disks that are not done yet, up to `diskStreams` of them side by side (each its
 * own stream; a vhd disk in one invocation, a cbt disk one chunk per invocation, so the state
 * machine's loop gives every disk a full Lambda time budget), and reports whether all are done.
 * Every stream also holds a slot of the source pool's `sourceStreamLimit`, when set. If one disk
 * fails, the others finish first and the step then fails with its error (a retry sends them again
 * from the input state, which the targets accept).
 */
export async function streamDelta(ctx: RunContext, state: VmRunState): Promise<VmRunState> {
  const pending = state.disks.filter((d) => !d.done);
  if (pending.length === 0) return { ...state, done: true };
  await holdLease(ctx, state.runId);
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const batch = pending.slice(0, Math.max(1, ctx.job.diskStreams));
  const settled = await Promise.allSettled(
    batch.map((disk) =>
      withStreamSlot(ctx, `${state.runId}/${state.vmUuid}/${disk.userdevice}`, () =>
        streamOne(ctx, state, disk, { source, destination }),
      ),
    ),
  );
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const updated = new Map(
    settled.map((r, i) => [batch[i]!, (r as PromiseFulfilledResult<DiskPlan>).value] as const),
  );
  const disks = state.disks.map((d) => updated.get(d) ?? d);
  return { ...state, disks, done: disks.every((d) => d.done) };
}

async function streamOne(ctx: RunContext, state: VmRunState, disk: DiskPlan, x: Sides): Promise<DiskPlan> {
  const [vdi, base, target] = await Promise.all([
    x.source.getByUuid('VDI', disk.sourceVdi),
    disk.baseVdi ? x.source.getByUuid('VDI', disk.baseVdi) : undefined,
    x.destination.getByUuid('VDI', disk.targetVdi),
  ]);
  if (disk.mode === 'cbt') return streamCbtChunk(ctx, state, disk, { ...x, vdi, base, target });
  const started = Date.now();
  const bytes = await streamDisk({
    ...x,
    vdi,
    base,
    target,
    targetSize: disk.virtualSize,
    bytesPerSecond: ctx.job.bandwidthLimitMBps ? ctx.job.bandwidthLimitMBps * 1e6 : undefined,
    timeoutMs: ctx.job.transferTimeoutSec * 1000,
    onProgress: (sent, total) =>
      ctx.progress?.({ vmUuid: state.vmUuid, userdevice: disk.userdevice, bytes: sent, total }),
  });
  const seconds = (Date.now() - started) / 1000;
  ctx.logger.info('disk transferred', {
    vmUuid: state.vmUuid,
    userdevice: disk.userdevice,
    kind: disk.kind,
    bytes,
    mbPerSecond: Number((bytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(1)),
  });
  return { ...disk, bytes, done: true };
}

/**
 * cbt mode: sends the next piece (at most cbtChunkMiB of data) of one disk and moves its cursor; the
 * disk is done when no extent remains past the cursor, so the state machine loops until then.
 */
async function streamCbtChunk(
  ctx: RunContext,
  state: VmRunState,
  disk: DiskPlan,
  x: Sides & { vdi: string; base: string | undefined; target: string },
): Promise<DiskPlan> {
  const started = Date.now();
  const r = await transferCbtChunk({
    source: x.source,
    destination: x.destination,
    vdi: x.vdi,
    base: x.base,
    target: x.target,
    virtualSize: disk.virtualSize,
    imageFormat: disk.imageFormat ?? 'vhd',
    cursor: disk.cursor ?? 0,
    ...cbtBudget(ctx.job),
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
  return { ...disk, bytes: disk.bytes + r.bytes, cursor: r.cursor, done: r.done };
}
