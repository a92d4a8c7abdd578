import { loadDefinition } from '../../cli/definition-cache.js';
import { runExecution, type StateEvent, type WorkflowDefinitions } from '../../cli/local-runner.js';
import { withVmResults } from '../../cli/run-job.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import type { StepHandler } from '../../functions/handlers/steps.js';
import type { RunResult, RunSummary } from '../../functions/replication/contract.js';
import type { HandlerDeps } from '../../functions/replication/ports.js';

/**
 * Runs one execution of the synthesized workflow with in-process handlers and reads every VM's
 * result back from the run store, as `xcr run` does; a failed execution throws.
 */
export async function runLocalExecution(
  config: XcrConfig,
  job: JobConfig,
  deps: Pick<HandlerDeps, 'runs'>,
  handlers: Record<string, StepHandler>,
  runId: string,
  onStateEvent?: (event: StateEvent) => void,
  transform: (definitions: WorkflowDefinitions) => WorkflowDefinitions = (d) => d,
): Promise<RunResult> {
  const { main, children } = transform(structuredClone(await loadDefinition(config, job)));
  const result = await runExecution({
    definition: main,
    children,
    input: { jobId: job.id, scheduledTime: new Date().toISOString() },
    executionName: runId,
    handlers,
    retryIntervalMs: 0,
    validated: true, // loadDefinition validated it, as `xcr run` relies on (cli/run-job.ts)
    ...(onStateEvent ? { onStateEvent } : {}),
  });
  if (result.status !== 'SUCCEEDED') {
    throw Object.assign(
      new Error(`execution ${runId} failed: ${result.error?.Error}: ${result.error?.Cause}`),
      {
        name: result.error?.Error ?? 'ExecutionFailed',
      },
    );
  }
  return withVmResults(deps as HandlerDeps, result.output as RunSummary);
}
