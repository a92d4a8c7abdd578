import type { JobConfig, XcrConfig } from '../functions/config/schema.js';
import { createFailoverHandlers } from '../functions/handlers/failover-steps.js';
import { createStepHandlers, type StepHandler } from '../functions/handlers/steps.js';
import { failureError } from '../functions/replication/errors.js';
import type {
  FailbackInput,
  FailbackReport,
  FailoverInput,
  FailoverReport,
} from '../functions/replication/failover/contract.js';
import { workflowEnded, workflowEndedOf } from '../functions/replication/failover/ended.js';
import type { HandlerDeps } from '../functions/replication/ports.js';
import { loadDefinition } from './definition-cache.js';
import { runExecution, type StateEvent } from './local-runner.js';

export interface LocalFailoverOptions {
  /** Wait before each retry, in ms (tests use 0). */
  retryIntervalMs?: number;
  /** Decorates a step handler, failover or replication (tests inject faults with it). */
  wrapStep?: (step: string, handler: StepHandler) => StepHandler;
  onStateEvent?: (event: StateEvent) => void;
}

export interface LocalFailoverRunner {
  /** One execution of the job's failover machine named `name` (the run id unless `request.run`). */
  failover(name: string, request?: Omit<FailoverInput, 'jobId'>): Promise<FailoverReport>;
  /** One execution of the job's failback machine named `name` (the run id unless `request.run`). */
  failback(name: string, request: Omit<FailbackInput, 'jobId'>): Promise<FailbackReport>;
}

/**
 * Runs a job's failover and failback locally as on AWS: the state machines CDK synthesizes,
 * executed by the local ASL interpreter, each task state calling the step handler of its name
 * in process (a planned failover's final delta runs the job's batch and transfer machines on the
 * replication step handlers). An execution that fails throws its error, code kept; as on AWS, one
 * that failed without its end step first goes the execution-ended path (the lease released if the
 * run still holds it, `xcr failover|failback failed`).
 */
export function localFailoverRunner(
  config: XcrConfig,
  job: JobConfig,
  deps: HandlerDeps,
  o: LocalFailoverOptions = {},
): LocalFailoverRunner {
  const plain = { ...createStepHandlers(deps), ...createFailoverHandlers(deps) };
  const handlers = Object.fromEntries(
    Object.entries(plain).map(([step, h]) => [step, o.wrapStep ? o.wrapStep(step, h) : h]),
  );
  const execute = async (machine: 'failover' | 'failback', run: string, input: Record<string, unknown>) => {
    const startedAt = new Date().toISOString();
    const defs = await loadDefinition(config, job, { machine });
    const result = await runExecution({
      definition: defs.main,
      children: defs.children,
      input,
      executionName: run,
      handlers,
      validated: true, // loadDefinition validated it before caching it
      ...(o.retryIntervalMs !== undefined ? { retryIntervalMs: o.retryIntervalMs } : {}),
      ...(o.onStateEvent ? { onStateEvent: o.onStateEvent } : {}),
    });
    if (result.status !== 'SUCCEEDED') {
      await workflowEnded(
        deps,
        workflowEndedOf(machine, {
          jobId: job.id,
          name: run,
          input,
          status: 'FAILED',
          startedAt,
          stoppedAt: new Date().toISOString(),
          ...(result.error ? { error: result.error.Error, cause: result.error.Cause } : {}),
        }),
      );
      throw failureError(result.error ?? { Error: 'States.Runtime', Cause: `${machine} ${run} failed` });
    }
    return result.output;
  };
  return {
    async failover(run, request = {}) {
      return (await execute('failover', run, { jobId: job.id, ...request })) as FailoverReport;
    },
    async failback(run, request) {
      return (await execute('failback', run, { jobId: job.id, ...request })) as FailbackReport;
    },
  };
}
