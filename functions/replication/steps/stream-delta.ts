import type { VmRunState } from '../../handlers/contract.js';
import { holdLease, type RunContext } from '../context.js';
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
