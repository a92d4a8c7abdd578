import type { RunContext } from '../replication/context.js';
import { failureCode, REFUSAL_ERROR, XcrRefusal } from '../replication/errors.js';
import {
  beginFailback,
  cutoverFailback,
  endFailback,
  finishFailback,
  syncFailback,
} from '../replication/failback/run.js';
import {
  FAILBACK_STATE,
  FAILOVER_STATE,
  type FailoverStepInput,
  type FailoverStepName,
  parseFailoverInput,
} from '../replication/failover/contract.js';
import {
  beginFailover,
  cloneFailoverVm,
  endFailover,
  failedFailoverVm,
  prepareFailoverVm,
} from '../replication/failover/run.js';
import { undoStep } from '../replication/failover/undo.js';
import type { HandlerDeps } from '../replication/ports.js';
import { type StepHandler, withRunContext } from './steps.js';

/** The failover and failback workflows' step handlers: parse, open the pools, call the core. */
export function createFailoverHandlers(deps: HandlerDeps): Record<FailoverStepName, StepHandler> {
  const on =
    <S extends FailoverStepName>(
      step: S,
      fn: (ctx: RunContext, input: FailoverStepInput<S>) => Promise<unknown>,
    ) =>
    async (raw: unknown) => {
      const input = parseFailoverInput(step, raw);
      const jobId =
        'request' in input ? input.request.jobId : 'state' in input ? input.state.jobId : input.jobId;
      try {
        return await withRunContext(deps, jobId, (ctx) => fn(ctx, input));
      } catch (err) {
        // a refusal keeps its kind across the state machine (the end step throws it again as one)
        if (err instanceof XcrRefusal)
          throw Object.assign(new Error(err.message), { name: REFUSAL_ERROR, code: err.code });
        throw err;
      }
    };
  return {
    [FAILOVER_STATE.begin]: on(FAILOVER_STATE.begin, beginFailover),
    [FAILOVER_STATE.undo]: on(FAILOVER_STATE.undo, (ctx, b) =>
      undoStep(ctx, { run: b.run, vm: b.request.undo!.vm }),
    ),
    [FAILOVER_STATE.prepare]: on(FAILOVER_STATE.prepare, prepareFailoverVm),
    [FAILOVER_STATE.clone]: on(FAILOVER_STATE.clone, cloneFailoverVm),
    [FAILOVER_STATE.vmFailed]: on(FAILOVER_STATE.vmFailed, (ctx, item) =>
      failedFailoverVm(
        ctx,
        item,
        failureCode(item.failure ?? { Error: 'UNKNOWN', Cause: 'no failure recorded' }),
      ),
    ),
    [FAILOVER_STATE.end]: on(FAILOVER_STATE.end, endFailover),
    [FAILBACK_STATE.begin]: on(FAILBACK_STATE.begin, beginFailback),
    [FAILBACK_STATE.sync]: on(FAILBACK_STATE.sync, syncFailback),
    [FAILBACK_STATE.cutover]: on(FAILBACK_STATE.cutover, cutoverFailback),
    [FAILBACK_STATE.finish]: on(FAILBACK_STATE.finish, finishFailback),
    [FAILBACK_STATE.end]: on(FAILBACK_STATE.end, endFailback),
  };
}
