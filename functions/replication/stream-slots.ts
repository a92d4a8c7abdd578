import { sleep } from '../retry/index.js';
import type { RunContext } from './context.js';
import { XcrTransientError } from './errors.js';

/**
 * A bound on the data streams reading from one source pool at once, over every job and run of the
 * deployment (`sourceStreamLimit`): slot i is the lease `streams#<pool>#<i>` in the run's lease store
 * (DynamoDB on AWS, files locally), held for one disk transfer. A function that dies holding a slot
 * frees it when its lease expires (the transfer timeout plus a minute).
 */
const WAIT_MS = 5 * 60 * 1000;
const POLL_MS = 250;

export async function withStreamSlot<T>(ctx: RunContext, owner: string, fn: () => Promise<T>): Promise<T> {
  const limit = ctx.job.sourceStreamLimit;
  if (!limit) return fn();
  const ttlMs = ctx.job.transferTimeoutSec * 1000 + 60_000;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    for (let i = 0; i < limit; i++) {
      const key = `streams#${ctx.job.source.pool}#${i}`;
      if (!(await ctx.leases.acquire(key, owner, ttlMs)).acquired) continue;
      try {
        return await fn();
      } finally {
        await ctx.leases.release(key, owner).catch(() => undefined);
      }
    }
    if (Date.now() > deadline) {
      throw new XcrTransientError(
        'STREAM_SLOTS_BUSY',
        `all ${limit} stream slots of source pool ${ctx.job.source.pool} stayed busy for ${WAIT_MS / 60_000} minutes; raise sourceStreamLimit or lower the jobs' concurrency`,
      );
    }
    await sleep(POLL_MS + Math.random() * POLL_MS);
  }
}
