import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobConfig, XcrConfig } from '../functions/config/schema.js';
import { createStepHandlers, type StepHandler } from '../functions/handlers/steps.js';
import type { RunResult, RunSummary, StepName } from '../functions/replication/contract.js';
import type { HandlerDeps } from '../functions/replication/ports.js';
import { runVmResults } from '../functions/replication/run-results.js';
import { executionEnded } from '../functions/replication/steps/execution-ended.js';
import { loadDefinition } from './definition-cache.js';
import type { WorkflowDefinitions } from './local-runner.js';
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
 * Runs a job locally: the state machine definitions CDK synthesizes (the run and its child
 * machines), executed by the local ASL interpreter, with task states calling the step handlers
 * in-process. The run's VM results are read back from the run store (then removed from it), so
 * the CLI sees every VM while the states carried counters only.
 */
export function localJobRunner(
  config: XcrConfig,
  job: JobConfig,
  deps: HandlerDeps,
  stateDir?: string,
  wrapStep?: StepWrapper,
): LocalJobRunner {
  // loaded once, at the first run (from the definition cache, or synthesized when the key is new)
  let definitions: Promise<WorkflowDefinitions> | undefined;
  const plain = createStepHandlers(deps);
  const handlers = wrapStep
    ? (Object.fromEntries(
        Object.entries(plain).map(([step, h]) => [step, wrapStep(step as StepName, h)]),
      ) as typeof plain)
    : plain;
  return {
    async run(scheduledAt = new Date()) {
      const name = executionName(job.id, scheduledAt);
      definitions ??= loadDefinition(config, job);
      const { main, children } = await definitions;
      const result = await runExecution({
        definition: main,
        children,
        input: { jobId: job.id, scheduledTime: scheduledAt.toISOString() },
        executionName: name,
        handlers,
        validated: true, // loadDefinition validated it
      });
      // As on AWS, an execution that ends without finish-run goes to the execution-ended path.
      const summary: RunSummary =
        result.status === 'SUCCEEDED'
          ? (result.output as RunSummary)
          : await executionEnded(deps, {
              jobId: job.id,
              runId: name,
              status: 'FAILED',
              startedAt: scheduledAt.toISOString(),
              stoppedAt: new Date().toISOString(),
              ...(result.error ? { error: result.error.Error, cause: result.error.Cause } : {}),
            });
      const run = await withVmResults(deps, summary);
      if (stateDir) recordRun(stateDir, run);
      return run;
    },
  };
}

/** The summary with every VM's result from the run store; the run's data is removed from the store. */
export async function withVmResults(deps: HandlerDeps, summary: RunSummary): Promise<RunResult> {
  const vms = [];
  for await (const vm of runVmResults(deps.runs, summary.runId, summary.vmCount)) vms.push(vm);
  await deps.runs.deleteRun(summary.runId);
  return { ...summary, vms };
}

/** Appends a run to the local history `xcr status` reads. */
export function recordRun(stateDir: string, run: RunResult): void {
  mkdirSync(stateDir, { recursive: true });
  appendFileSync(join(stateDir, `runs-${run.jobId}.jsonl`), `${JSON.stringify(run)}\n`);
}
