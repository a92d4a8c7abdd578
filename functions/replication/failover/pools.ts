/**
 * What failover, undo and failback share around their work: the source pool probe, the job lease
 * they hold under their run id, the sweep of crashed runs' leftovers on both pools, their events,
 * and the end steps' release-publish-rethrow.
 */
import type { Xapi } from '../../xapi/index.js';
import { LEASE_TTL_MS, leaseKey, type RunContext } from '../context.js';
import { failureCode, failureError, XcrRefusal } from '../errors.js';
import { findVmByUuid } from '../inventory.js';
import { clip, type Listed, listed } from './contract.js';
import { keptRuns, sweepFailoverLeftovers } from './copy.js';

const SOURCE_PROBE_MS = 15_000;
export const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
export const codeOf = (err: unknown) => String((err as { code?: unknown }).code ?? (err as Error).name);

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

/** The source VM, or undefined when the source pool is lost or the VM is gone. */
export async function sourceVmOf(source: Xapi | undefined, vm: string) {
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
  await acquireJobLease(ctx, run);
  try {
    return await fn();
  } finally {
    await ctx.leases.release(leaseKey(ctx.job.id), run);
  }
}

/** Takes (or, for the same run id, renews) the job's lease; JOB_BUSY while another run holds it. */
export async function acquireJobLease(ctx: RunContext, run: string): Promise<void> {
  const lease = await ctx.leases.acquire(leaseKey(ctx.job.id), run, LEASE_TTL_MS);
  if (!lease.acquired)
    throw new XcrRefusal(
      'JOB_BUSY',
      `run ${lease.holder} of job ${ctx.job.id} holds the job (lease until ${lease.expiresAt.toISOString()}); wait for it to end, or clear a dead one with "xcr unlock ${ctx.job.id}"`,
    );
}

/** Entries of a list per log line: each line stays far below a log event's size limit. */
export const ITEMS_PER_LOG_LINE = 500;

/** Every item of a list that grows with a pool, logged as warnings of ITEMS_PER_LOG_LINE items under `field`. */
export function logAll(
  ctx: Pick<RunContext, 'logger'>,
  what: string,
  field: string,
  items: readonly string[],
  extra: Record<string, unknown> = {},
): void {
  const parts = Math.ceil(items.length / ITEMS_PER_LOG_LINE);
  for (let i = 0; i < parts; i++) {
    const chunk = items.slice(i * ITEMS_PER_LOG_LINE, (i + 1) * ITEMS_PER_LOG_LINE);
    ctx.logger.warn(what, { ...extra, [field]: chunk, part: i + 1, parts, count: items.length });
  }
}

/**
 * `removed` (all of it, logged in lines of ITEMS_PER_LOG_LINE) added to `prior`, bounded for the
 * payload: the logs name every object removed, the payload and the events count them.
 */
export function noteRemoved(
  ctx: RunContext,
  what: string,
  removed: readonly string[],
  prior?: Listed,
): Listed {
  logAll(ctx, what, 'removed', removed);
  return listed(removed, prior);
}

/**
 * Removes crashed failover/failback runs' leftovers on both pools (the source only when it
 * answers): all of them logged, the payload's count and first items returned.
 */
export async function sweepBoth(
  ctx: RunContext,
  dest: Xapi,
  source: Xapi | undefined,
  liveRun: string,
  prior?: Listed,
): Promise<Listed> {
  const keep = await keptRuns(dest, ctx.job.id);
  const removed = await sweepFailoverLeftovers(dest, ctx.job.id, { liveRun, keep });
  if (source) removed.push(...(await sweepFailoverLeftovers(source, ctx.job.id, { liveRun, keep })));
  return noteRemoved(ctx, 'removed leftovers of interrupted failover runs', removed, prior);
}

export async function publish(ctx: RunContext, what: string, detail: Record<string, unknown>) {
  await ctx.events.publishEvent?.(`xcr ${what}`, { jobId: ctx.job.id, ...detail });
}

/**
 * What both end steps do first: the job lease released (only if this run holds it) whatever
 * happened; a failure published as `xcr <what> failed` and thrown again. Returns the run id.
 */
export async function releaseOrRethrow(
  ctx: RunContext,
  what: 'failover' | 'failback',
  input: {
    executionName: string;
    state: {
      run?: string | undefined;
      vm?: string | undefined;
      failure?: { Error: string; Cause?: string | undefined } | undefined;
    };
  },
): Promise<string> {
  const { state } = input;
  const run = state.run ?? input.executionName;
  await ctx.leases.release(leaseKey(ctx.job.id), run);
  if (state.failure) {
    const f = failureCode(state.failure);
    await publish(ctx, `${what} failed`, {
      run,
      ...(state.vm ? { vm: state.vm } : {}),
      message: clip(f.message),
    });
    throw failureError(state.failure);
  }
  return run;
}
