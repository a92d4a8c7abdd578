import type { RunContext } from '../replication/context.js';
import {
  DRILL_STATE,
  type DrillStepInput,
  type DrillStepName,
  parseDrillInput,
} from '../replication/drill/contract.js';
import {
  bootStep,
  checkStep,
  clonePointStep,
  type DrillTiming,
  isolateStep,
  reportDrill,
  selectPoints,
  teardownStep,
} from '../replication/drill/flow.js';
import type { HandlerDeps } from '../replication/ports.js';
import { type StepHandler, withRunContext } from './steps.js';

/** The drill workflow's step handlers over one set of dependencies: parse, open the pools, call the core. */
export function createDrillHandlers(
  deps: HandlerDeps,
  timing: DrillTiming = {},
): Record<DrillStepName, StepHandler> {
  const on =
    <S extends DrillStepName>(step: S, fn: (ctx: RunContext, input: DrillStepInput<S>) => Promise<unknown>) =>
    async (raw: unknown) => {
      const input = parseDrillInput(step, raw);
      const jobId =
        'request' in input ? input.request.jobId : 'state' in input ? input.state.jobId : input.jobId;
      return withRunContext(deps, jobId, (ctx) => fn(ctx, input));
    };
  return {
    [DRILL_STATE.selectPoints]: on(DRILL_STATE.selectPoints, selectPoints),
    [DRILL_STATE.clonePoint]: on(DRILL_STATE.clonePoint, clonePointStep),
    [DRILL_STATE.isolate]: on(DRILL_STATE.isolate, isolateStep),
    [DRILL_STATE.boot]: on(DRILL_STATE.boot, bootStep),
    [DRILL_STATE.check]: on(DRILL_STATE.check, (ctx, item) => checkStep(ctx, item, timing)),
    [DRILL_STATE.teardown]: on(DRILL_STATE.teardown, teardownStep),
    [DRILL_STATE.report]: on(DRILL_STATE.report, reportDrill),
  };
}
