import type { JobConfig, XcrConfig } from '../functions/config/schema.js';
import { createDrillHandlers } from '../functions/handlers/drill-steps.js';
import type { StepHandler } from '../functions/handlers/steps.js';
import type { RunResult } from '../functions/replication/contract.js';
import {
  DRILL_STATE,
  DRILL_TRIGGER_STATUSES,
  type DrillInput,
  type DrillReport,
  type SelectPointsOutput,
} from '../functions/replication/drill/contract.js';
import type { DrillTiming } from '../functions/replication/drill/flow.js';
import { DRILL_DEFAULTS } from '../functions/replication/drill/lease.js';
import type { HandlerDeps } from '../functions/replication/ports.js';
import { loadDefinition } from './definition-cache.js';
import { runExecution, type StateEvent, type WorkflowDefinitions } from './local-runner.js';

/** Drill run ids as executions get them: unique per start (`drill-<job>-<time>`). */
export function drillRunName(jobId: string, at: Date): string {
  return `drill-${jobId}-${at.toISOString().replace(/[-:.]/g, '')}`.slice(0, 80);
}

export interface LocalDrillOptions {
  /** How often the check looks at the guest and how long one check invocation polls. */
  timing?: DrillTiming;
  /** check-wait in ms instead of the definition's seconds (tests, the demo). */
  checkWaitMs?: number;
  /** Wait before each retry, in ms (tests use 0). */
  retryIntervalMs?: number;
  /** Decorates a drill step handler (tests inject faults or crash the drill with it). */
  wrapStep?: (step: string, handler: StepHandler) => StepHandler;
  onStateEvent?: (event: StateEvent) => void;
}

/** What a drill execution ends with: the report, or (an `afterRun` start) that no drill was due. */
export type DrillOutcome = DrillReport | (SelectPointsOutput & { due: false });

export interface LocalDrillRunner {
  run(request?: Omit<DrillInput, 'jobId'> & { drillRun?: string }): Promise<DrillOutcome>;
}

/**
 * Runs a job's drill locally as on AWS: the drill state machine CDK synthesizes, executed by the
 * local ASL interpreter, each task state calling the drill step handler of its name in-process.
 */
export function localDrillRunner(
  config: XcrConfig,
  job: JobConfig,
  deps: HandlerDeps,
  o: LocalDrillOptions = {},
): LocalDrillRunner {
  const plain = createDrillHandlers(deps, o.timing);
  const handlers = Object.fromEntries(
    Object.entries(plain).map(([step, h]) => [step, o.wrapStep ? o.wrapStep(step, h) : h]),
  );
  let definition: Promise<WorkflowDefinitions> | undefined;
  return {
    async run(request = {}) {
      const { drillRun = drillRunName(job.id, new Date()), ...rest } = request;
      // A job without a drill block drills with the defaults (the handlers apply them too).
      definition ??= loadDefinition(config, job.drill ? job : { ...job, drill: DRILL_DEFAULTS }, {
        machine: 'drill',
      });
      const defs = await definition;
      const result = await runExecution({
        definition: defs.main,
        children: defs.children,
        input: { jobId: job.id, ...rest },
        executionName: drillRun,
        handlers,
        validated: true, // loadDefinition validated it before caching it
        ...(o.retryIntervalMs !== undefined ? { retryIntervalMs: o.retryIntervalMs } : {}),
        ...(o.checkWaitMs !== undefined ? { waitMs: { [DRILL_STATE.checkWait]: o.checkWaitMs } } : {}),
        ...(o.onStateEvent ? { onStateEvent: o.onStateEvent } : {}),
      });
      // Every failure of a step is caught into report; only report itself failing ends here.
      if (result.status !== 'SUCCEEDED')
        throw Object.assign(
          new Error(`drill ${drillRun} failed: ${result.error?.Error}: ${result.error?.Cause}`),
          {
            name: result.error?.Error ?? 'DrillFailed',
          },
        );
      return result.output as DrillOutcome;
    },
  };
}

export const isReport = (o: DrillOutcome): o is DrillReport => 'status' in o;

/**
 * Locally what the run-ended rule does on AWS: after a run that made recovery points, a job whose
 * drill.every is { afterRuns } starts a drill execution for it (select-points decides if it is due).
 */
export async function drillAfterRun(
  job: JobConfig,
  drills: LocalDrillRunner,
  run: Pick<RunResult, 'runId' | 'status'>,
): Promise<DrillOutcome | undefined> {
  const every = job.drill?.every;
  if (!every || !('afterRuns' in every)) return undefined;
  if (!(DRILL_TRIGGER_STATUSES as readonly string[]).includes(run.status)) return undefined;
  return drills.run({ afterRun: run.runId });
}
