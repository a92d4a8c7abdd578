import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, StepFunctionsStartExecution } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import type { JobConfig } from '../functions/config/schema.js';
import { ERROR, STATE, type StepName, TRANSFER_INVOCATIONS } from '../functions/replication/contract.js';

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
}

const CATCH_ALL = [sfn.Errors.ALL];

function task(
  scope: Construct,
  step: StepName,
  props: WorkflowProps,
  o: Partial<sfn.TaskStateBaseProps> & { payload?: sfn.TaskInput } = {},
) {
  const invoke = new LambdaInvoke(scope, step, {
    stateName: step,
    lambdaFunction: props.functions[step],
    // The step's return value is the state's output, as in the local runner.
    payloadResponseOnly: true,
    // CDK adds a retry on the Lambda service exceptions (Lambda.ServiceException, …) before ours.
    retryOnServiceExceptions: true,
    taskTimeout: sfn.Timeout.duration(props.timeouts[step]),
    ...o,
  });
  invoke.addRetry(THROTTLE_RETRY);
  invoke.addRetry(TRANSIENT_RETRY);
  return invoke;
}

/**
 * The transfer state machine: one VM's disk loop, stream-delta ⟲ transfer-more?, for at most
 * TRANSFER_INVOCATIONS invocations (so its history stays bounded however many chunks a cbt disk
 * has); the batch machine starts another one while the VM's disks are not done. Input
 * `{ vm: VmRunState, n: 0 }`, output the VM's state; a failed stream-delta ends it with the
 * failure in the state (`vm.failure`), which sends the VM to rollback.
 */
export function buildTransferWorkflow(scope: Construct, props: WorkflowProps): sfn.IChainable {
  const end = new sfn.Succeed(scope, STATE.transferEnd, { stateName: STATE.transferEnd, outputPath: '$.vm' });
  // InputPath, not a payload: with payloadResponseOnly CDK would render `"Parameters": "$.vm"`.
  const stream = task(scope, STATE.streamDelta, props, { inputPath: '$.vm', resultPath: '$.vm' });
  stream.addCatch(end, { errors: CATCH_ALL, resultPath: '$.vm.failure' });
  const count = new sfn.Pass(scope, STATE.countInvocation, {
    stateName: STATE.countInvocation,
    parameters: { 'vm.$': '$.vm', 'n.$': 'States.MathAdd($.n, 1)' },
  });
  const more = new sfn.Choice(scope, STATE.transferMoreChoice, { stateName: STATE.transferMoreChoice })
    .when(sfn.Condition.booleanEquals('$.vm.done', true), end)
    .when(sfn.Condition.numberGreaterThanEquals('$.n', TRANSFER_INVOCATIONS), end)
    .otherwise(stream);
  return stream.next(count).next(more);
}

/**
 * The batch state machine: load-batch (at most BATCH_SIZE VM uuids from the run store) → Map over
 * them at the job's concurrency: snapshot-previous → disks-done? ⟲ transfer-disks (a transfer
 * child execution) → commit-or-rollback, which records the VM's outcome in the run store. Its
 * output is a counter: the VMs' results stay in the store.
 */
export function buildBatchWorkflow(
  scope: Construct,
  props: WorkflowProps,
  transfer: sfn.IStateMachine,
): sfn.IChainable {
  const load = task(scope, STATE.loadBatch, props, {
    payload: sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'runId.$': '$.runId',
      'startedAt.$': '$.startedAt',
      'batchIndex.$': '$.batchIndex',
      'vmCount.$': '$.vmCount',
    }),
  });

  const commit = task(scope, STATE.commitOrRollback, props, {
    // The iteration's output: the result itself is in the run store.
    resultSelector: { 'status.$': '$.status' },
  });
  const snapshot = task(scope, STATE.snapshotPrevious, props);
  const failureCatch: sfn.CatchProps = { errors: CATCH_ALL, resultPath: '$.failure' };
  snapshot.addCatch(commit, failureCatch);

  const transferDisks = new StepFunctionsStartExecution(scope, STATE.transferDisks, {
    stateName: STATE.transferDisks,
    stateMachine: transfer,
    integrationPattern: sfn.IntegrationPattern.RUN_JOB,
    input: sfn.TaskInput.fromObject({ 'vm.$': '$', n: 0 }),
    associateWithParent: true,
    // The child's output is the VM's state (what stream-delta returned last).
    outputPath: '$.Output',
  });
  // The child could not start or did not end well (stopped, timed out): the VM is rolled back.
  transferDisks.addCatch(commit, failureCatch);

  // Nothing of one VM may fail the Map (and with it every other VM): a failed commit is rolled
  // back once, and a failed rollback ends the VM as failed with both errors (the next run's sweep
  // removes what it left). Timeouts (States.Timeout) and Lambda errors are caught alike.
  const resultLost = new sfn.Pass(scope, STATE.resultLost, {
    stateName: STATE.resultLost,
    parameters: { status: 'failed' },
  });
  const recordFailure = task(scope, STATE.recordFailure, props, {
    payload: sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'runId.$': '$.runId',
      'vmUuid.$': '$.vmUuid',
      'index.$': '$.index',
      'startedAt.$': '$.startedAt',
      'failure.$': '$.failure',
      'rollbackFailure.$': '$.stepFailure',
    }),
    resultSelector: { 'status.$': '$.status' },
  });
  recordFailure.addCatch(resultLost, { errors: CATCH_ALL, resultPath: sfn.JsonPath.DISCARD });
  const commitFailed = new sfn.Pass(scope, STATE.commitFailed, {
    stateName: STATE.commitFailed,
    inputPath: '$.stepFailure',
    resultPath: '$.failure',
  });
  commitFailed.next(commit);
  const rolledBack = new sfn.Choice(scope, STATE.rollbackTriedChoice, {
    stateName: STATE.rollbackTriedChoice,
  })
    .when(sfn.Condition.isPresent('$.failure'), recordFailure)
    .otherwise(commitFailed);
  commit.addCatch(rolledBack, { errors: CATCH_ALL, resultPath: '$.stepFailure' });

  const disksDone = new sfn.Choice(scope, STATE.disksDoneChoice, { stateName: STATE.disksDoneChoice })
    .when(sfn.Condition.isPresent('$.failure'), commit)
    .when(sfn.Condition.booleanEquals('$.done', true), commit)
    .otherwise(transferDisks);
  transferDisks.next(disksDone);
  const perVm = snapshot.next(disksDone);

  const replicate = new sfn.Map(scope, STATE.replicateVms, {
    stateName: STATE.replicateVms,
    itemsPath: '$.vms',
    itemSelector: {
      'jobId.$': '$.jobId',
      'runId.$': '$.runId',
      'startedAt.$': '$.startedAt',
      'vmUuid.$': '$$.Map.Item.Value',
      'index.$': 'States.MathAdd($$.Map.Item.Index, $.offset)',
    },
    maxConcurrency: props.job.concurrency,
    // Counters only: the batch's output does not list its VMs.
    resultSelector: { 'vms.$': 'States.ArrayLength($)' },
  });
  replicate.itemProcessor(perVm);
  // No Catch on the Map: every failure of a VM is handled inside its iteration. What is left (a
  // runtime error in the definition) fails this batch; the run's Catch on run-batch goes on.
  return load.next(replicate);
}

/**
 * The run workflow of one job: lock-check → skipped? → batches-left? ⟲ (run-batch: a batch child
 * execution → next-batch) → finish-run. A skipped run goes from skipped? straight to finish-run.
 * The state carries ids and counters only; the VM list and the results are in the run store.
 */
export function buildRunWorkflow(
  scope: Construct,
  props: WorkflowProps,
  batch: sfn.IStateMachine,
): sfn.IChainable {
  const lockCheck = task(scope, STATE.lockCheck, props, {
    payload: sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'scheduledTime.$': '$.scheduledTime',
      'runId.$': '$$.Execution.Name',
    }),
  });
  const finish = task(scope, STATE.finishRun, props);

  const nextBatch = new sfn.Pass(scope, STATE.nextBatch, {
    stateName: STATE.nextBatch,
    parameters: { 'index.$': 'States.MathAdd($.batch.index, 1)', 'count.$': '$.batch.count' },
    resultPath: '$.batch',
  });
  const runBatch = new StepFunctionsStartExecution(scope, STATE.runBatch, {
    stateName: STATE.runBatch,
    stateMachine: batch,
    integrationPattern: sfn.IntegrationPattern.RUN_JOB,
    // Named after the run and the batch (hashed: a run id may take all 80 characters), so a retried
    // start finds the batch already running instead of starting it twice.
    name: sfn.JsonPath.format(
      '{}-b{}',
      sfn.JsonPath.hash(sfn.JsonPath.stringAt('$.runId'), 'MD5'),
      sfn.JsonPath.stringAt('$.batch.index'),
    ),
    input: sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'runId.$': '$.runId',
      'startedAt.$': '$.startedAt',
      'batchIndex.$': '$.batch.index',
      'vmCount.$': '$.vmCount',
    }),
    associateWithParent: true,
    resultPath: sfn.JsonPath.DISCARD,
  });
  // A batch that failed as a whole (it should not: its VMs catch everything) costs its VMs that
  // have no result yet (finish-run reports them `no-result`), never the batches after it.
  const batchFailed = new sfn.Pass(scope, STATE.batchFailed, {
    stateName: STATE.batchFailed,
    parameters: { 'Error.$': '$.batchFailure.Error' },
    resultPath: '$.batchFailure',
  });
  runBatch.addCatch(batchFailed, { errors: CATCH_ALL, resultPath: '$.batchFailure' });
  batchFailed.next(nextBatch);
  const batchesLeft = new sfn.Choice(scope, STATE.batchesLeftChoice, { stateName: STATE.batchesLeftChoice })
    .when(sfn.Condition.numberLessThanJsonPath('$.batch.index', '$.batch.count'), runBatch)
    .otherwise(finish);
  runBatch.next(nextBatch);
  nextBatch.next(batchesLeft);

  // A skipped run still goes through finish-run: it reports the run (event `xcr run skipped`) and
  // leaves the lease alone, so every execution ends with a run summary.
  const skippedChoice = new sfn.Choice(scope, STATE.skippedChoice, { stateName: STATE.skippedChoice })
    .when(sfn.Condition.stringEquals('$.status', 'skipped'), finish)
    .otherwise(batchesLeft);

  return lockCheck.next(skippedChoice);
}
