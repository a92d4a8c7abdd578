import { findJob } from '../config/load.js';
import type { RunContext } from '../replication/context.js';
import { PoolSessions } from '../replication/context.js';
import { asRunState, parseStepInput as parse, STATE, type StepName } from '../replication/contract.js';
import { classifyError } from '../replication/errors.js';
import type { HandlerDeps } from '../replication/ports.js';
import { commitOrRollback } from '../replication/steps/commit-or-rollback.js';
import { finishRun } from '../replication/steps/finish-run.js';
import { loadBatch } from '../replication/steps/load-batch.js';
import { lockCheck } from '../replication/steps/lock-check.js';
import { recordFailure } from '../replication/steps/record-failure.js';
import { snapshotPrevious } from '../replication/steps/snapshot-previous.js';
import { streamDelta } from '../replication/steps/stream-delta.js';

export type StepHandler = (input: unknown) => Promise<unknown>;

/** Runs `fn` with a RunContext for the job: opens pool sessions lazily, closes them, types errors. */
export async function withRunContext<T>(
  deps: HandlerDeps,
  jobId: string,
  fn: (ctx: RunContext) => Promise<T>,
): Promise<T> {
  const job = findJob(deps.config, jobId);
  const pools = new PoolSessions(deps.config, deps.resolvePassword);
  const ctx: RunContext = {
    job,
    source: () => pools.get(job.source.pool),
    destination: () => pools.get(job.destination.pool),
    leases: deps.leases,
    runs: deps.runs,
    events: deps.events,
    logger: deps.logger,
    now: deps.now,
    progress: deps.progress,
  };
  try {
    return await fn(ctx);
  } catch (err) {
    const typed = classifyError(err);
    deps.logger.error('step failed', { jobId, error: typed.name, message: typed.message });
    throw typed;
  } finally {
    await pools.closeAll();
  }
}

/**
 * The step handlers over one set of dependencies. Each parses its input, opens the pools it
 * needs, calls the core, logs out, and rethrows failures as errors whose `name` the state machine
 * retries (XcrTransientError) or catches (XcrPermanentError, ConfigError).
 */
export function createStepHandlers(deps: HandlerDeps): Record<StepName, StepHandler> {
  const withContext = <T>(jobId: string, fn: (ctx: RunContext) => Promise<T>): Promise<T> =>
    withRunContext(deps, jobId, fn);

  return {
    [STATE.lockCheck]: async (raw) => {
      const input = parse(STATE.lockCheck, raw);
      return withContext(input.jobId, (ctx) => lockCheck(ctx, input));
    },
    [STATE.loadBatch]: async (raw) => {
      const input = parse(STATE.loadBatch, raw);
      return withContext(input.jobId, (ctx) => loadBatch(ctx, input));
    },
    [STATE.snapshotPrevious]: async (raw) => {
      const input = parse(STATE.snapshotPrevious, raw);
      return withContext(input.jobId, (ctx) => snapshotPrevious(ctx, input));
    },
    [STATE.streamDelta]: async (raw) => {
      const input = parse(STATE.streamDelta, raw);
      return withContext(input.jobId, (ctx) => streamDelta(ctx, input));
    },
    [STATE.commitOrRollback]: async (raw) => {
      const input = asRunState(parse(STATE.commitOrRollback, raw));
      return withContext(input.jobId, (ctx) => commitOrRollback(ctx, input));
    },
    [STATE.recordFailure]: async (raw) => {
      const input = parse(STATE.recordFailure, raw);
      return withContext(input.jobId, (ctx) => recordFailure(ctx, input));
    },
    [STATE.finishRun]: async (raw) => {
      const input = parse(STATE.finishRun, raw);
      return withContext(input.jobId, (ctx) => finishRun(ctx, input));
    },
  };
}
