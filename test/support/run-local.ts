import { loadDefinition } from '../../cli/definition-cache.js';
import { runExecution } from '../../cli/local-runner.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import type { StepHandler } from '../../functions/handlers/steps.js';
import type { RunResult } from '../../functions/replication/contract.js';

/** Runs one execution of the synthesized workflow with in-process handlers; a failed execution throws. */
export async function runLocalExecution(
  config: XcrConfig,
  job: JobConfig,
  handlers: Record<string, StepHandler>,
  runId: string,
  onStateEvent?: (event: unknown) => void,
  transform: (definition: Record<string, unknown>) => Record<string, unknown> = (d) => d,
): Promise<RunResult> {
  const result = await runExecution({
    definition: transform(structuredClone(await loadDefinition(config, job))),
    input: { jobId: job.id, scheduledTime: new Date().toISOString() },
    executionName: runId,
    handlers: handlers as never,
    retryIntervalMs: 0,
    onStateEvent,
  });
  if (result.status !== 'SUCCEEDED') {
    throw Object.assign(
      new Error(`execution ${runId} failed: ${result.error?.Error}: ${result.error?.Cause}`),
      {
        name: result.error?.Error ?? 'ExecutionFailed',
      },
    );
  }
  return result.output as RunResult;
}
