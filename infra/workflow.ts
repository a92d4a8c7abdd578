import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import type { JobConfig } from '../functions/config/schema.js';
import { ERROR, STATE, type StepName } from '../functions/replication/contract.js';

/** Retry for the project's transient errors; other error names are not retried (they go to a Catch). */
export const TRANSIENT_RETRY: sfn.RetryProps = {
  errors: [ERROR.transient],
  interval: Duration.seconds(5),
  maxAttempts: 3,
  backoffRate: 2,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.FULL,
};

/** Lambda throttling (a wide Map on a busy account) is not in CDK's service-exception retry. */
export const THROTTLE_RETRY: sfn.RetryProps = {
  errors: [ERROR.lambdaThrottled],
  interval: Duration.seconds(2),
  maxAttempts: 6,
  backoffRate: 2,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.FULL,
};

export interface WorkflowProps {
  readonly job: JobConfig;
  readonly functions: Readonly<Record<StepName, IFunction>>;
  readonly timeouts: Readonly<Record<StepName, Duration>>;
  /**
   * Run each VM as a child execution (Distributed Map) instead of inside the run's own history,
   * which holds at most 25,000 events (~12 + 7 per disk per VM inline).
   * @default false
   */
  readonly distributedMap?: boolean;
}

function task(scope: Construct, step: StepName, props: WorkflowProps, payload?: sfn.TaskInput) {
  const invoke = new LambdaInvoke(scope, step, {
    stateName: step,
    lambdaFunction: props.functions[step],
    // The step's return value is the state's output, as in the local runner.
    payloadResponseOnly: true,
    // CDK adds a retry on the Lambda service exceptions (Lambda.ServiceException, …) before ours.
    retryOnServiceExceptions: true,
    taskTimeout: sfn.Timeout.duration(props.timeouts[step]),
    ...(payload ? { payload } : {}),
  });
  invoke.addRetry(THROTTLE_RETRY);
  invoke.addRetry(TRANSIENT_RETRY);
  return invoke;
}

/**
 * The run workflow of one job: lock-check → skipped? → replicate-vms (Map over VMs:
 * snapshot-previous → stream-delta ⟲ disks-done? → commit-or-rollback) → finish-run; a skipped
 * run goes from skipped? straight to finish-run.
 * The Map's concurrency is the job's, which is why there is one state machine per job.
 */
export function buildWorkflow(scope: Construct, props: WorkflowProps): sfn.IChainable {
  const lockCheck = task(
    scope,
    STATE.lockCheck,
    props,
    sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'scheduledTime.$': '$.scheduledTime',
      'runId.$': '$$.Execution.Name',
    }),
  );

  const commit = task(scope, STATE.commitOrRollback, props);
  const snapshot = task(scope, STATE.snapshotPrevious, props);
  const stream = task(scope, STATE.streamDelta, props);
  const failureCatch: sfn.CatchProps = { errors: [sfn.Errors.ALL], resultPath: '$.failure' };
  snapshot.addCatch(commit, failureCatch);
  stream.addCatch(commit, failureCatch);

  // Nothing of one VM may fail the Map (and with it every other VM): a failed commit is rolled
  // back once, and a failed rollback ends the VM as failed with both errors (the next run's sweep
  // removes what it left). Timeouts (States.Timeout) and Lambda errors are caught alike.
  const vmFailed = new sfn.Pass(scope, STATE.vmFailed, {
    stateName: STATE.vmFailed,
    parameters: {
      'vmUuid.$': '$.vmUuid',
      status: 'failed',
      bytes: 0,
      durationMs: 0,
      'failure.$': '$.failure',
      'rollbackFailure.$': '$.stepFailure',
    },
  });
  const commitFailed = new sfn.Pass(scope, STATE.commitFailed, {
    stateName: STATE.commitFailed,
    inputPath: '$.stepFailure',
    resultPath: '$.failure',
  });
  commitFailed.next(commit);
  const rolledBack = new sfn.Choice(scope, STATE.rollbackTriedChoice, {
    stateName: STATE.rollbackTriedChoice,
  })
    .when(sfn.Condition.isPresent('$.failure'), vmFailed)
    .otherwise(commitFailed);
  commit.addCatch(rolledBack, { errors: [sfn.Errors.ALL], resultPath: '$.stepFailure' });

  const disksDone = new sfn.Choice(scope, STATE.disksDoneChoice, { stateName: STATE.disksDoneChoice })
    .when(sfn.Condition.booleanEquals('$.done', true), commit)
    .otherwise(stream);
  const perVm = snapshot.next(stream).next(disksDone);

  const finish = task(scope, STATE.finishRun, props);
  const mapProps = {
    stateName: STATE.replicateVms,
    itemsPath: '$.vms',
    maxConcurrency: props.job.concurrency,
    resultPath: '$.results',
  };
  const replicate = props.distributedMap
    ? new sfn.DistributedMap(scope, STATE.replicateVms, {
        ...mapProps,
        mapExecutionType: sfn.StateMachineType.STANDARD,
      })
    : new sfn.Map(scope, STATE.replicateVms, mapProps);
  replicate.itemProcessor(perVm);
  // No Catch on the Map: every failure of a VM is handled inside its iteration. What is left
  // (States.DataLimitExceeded, a runtime error in the definition) fails the execution, and the
  // execution-ended rule releases the lease and reports the run failed.

  // A skipped run still goes through finish-run: it reports the run (event `xcr run skipped`) and
  // leaves the lease alone, so every execution ends with a RunResult.
  const skippedChoice = new sfn.Choice(scope, STATE.skippedChoice, { stateName: STATE.skippedChoice })
    .when(sfn.Condition.stringEquals('$.status', 'skipped'), finish)
    .otherwise(replicate.next(finish));

  return lockCheck.next(skippedChoice);
}
