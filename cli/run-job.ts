import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobConfig, XcrConfig } from '../functions/config/schema.js';
import { createStepHandlers, type StepHandler } from '../functions/handlers/steps.js';
import type { RunResult, StepName } from '../functions/replication/contract.js';
import type { HandlerDeps } from '../functions/replication/ports.js';
import { executionEnded } from '../functions/replication/steps/execution-ended.js';
import { loadDefinition } from './definition-cache.js';
import { runExecution } from './local-runner.js';

/** Execution names as EventBridge Scheduler would make them unique: job + scheduled time. */
export function executionName(jobId: string, at: Date): string {
  return `${jobId}-${at.toISOString().replace(/[-:.]/g, '')}`.slice(0, 80);
}

/** Decorates a step handler (the demo holds a run with it; tests inject faults). */
export type StepWrapper = (step: StepName, handler: StepHandler) => StepHandler;

export interface LocalJobRunner {
  /** One execution of the job's synthesized state machine; resolves with the run result. */
  run(scheduledAt?: Date): Promise<RunResult>;
}

/**
 * Runs a job locally: the state machine definition CDK synthesizes, executed by the local ASL
 * interpreter, with task states calling the step handlers in-process.
 */
export function localJobRunner(
  config: XcrConfig,
  job: JobConfig,
  deps: HandlerDeps,
  stateDir?: string,
  wrapStep?: StepWrapper,
): LocalJobRunner {
  // loaded once, at the first run (from the definition cache, or synthesized when the key is new)
  let definition: Promise<Record<string, unknown>> | undefined;
  const plain = createStepHandlers(deps);
  const handlers = wrapStep
    ? (Object.fromEntries(
        Object.entries(plain).map(([step, h]) => [step, wrapStep(step as StepName, h)]),
      ) as typeof plain)
    : plain;
  return {
    async run(scheduledAt = new Date()) {
      const name = executionName(job.id, scheduledAt);
      definition ??= loadDefinition(config, job);
      const result = await runExecution({
        definition: await definition,
        input: { jobId: job.id, scheduledTime: scheduledAt.toISOString() },
        executionName: name,
        handlers,
        validated: true, // loadDefinition validated it
      });
      // As on AWS, an execution that ends without finish-run goes to the execution-ended path.
      const run: RunResult =
        result.status === 'SUCCEEDED'
          ? (result.output as RunResult)
          : await executionEnded(deps, {
              jobId: job.id,
              runId: name,
              status: 'FAILED',
              startedAt: scheduledAt.toISOString(),
              stoppedAt: new Date().toISOString(),
              ...(result.error ? { error: result.error.Error, cause: result.error.Cause } : {}),
            });
      if (stateDir) recordRun(stateDir, run);
      return run;
    },
  };
}

/** Appends a run to the local history `xcr status` reads. */
export function recordRun(stateDir: string, run: RunResult): void {
  mkdirSync(stateDir, { recursive: true });
  appendFileSync(join(stateDir, `runs-${run.jobId}.jsonl`), `${JSON.stringify(run)}\n`);
}
