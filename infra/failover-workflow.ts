import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, StepFunctionsStartExecution } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { JobConfig } from '../functions/config/schema.js';
import {
  FAILBACK_STATE,
  FAILOVER_STATE,
  type FailoverStepName,
} from '../functions/replication/failover/contract.js';
import type { StepSizing } from './step-lambdas.js';
import { THROTTLE_RETRY, TRANSIENT_RETRY } from './workflow.js';

/**
 * The failover steps make a few XAPI calls each; prepare may wait for a clean shutdown, clone
 * for VM.clone and VM.start, finish for VM.start and the copy's destruction; failback-sync streams
 * one disk of the reverse delta (at most transferTimeoutSec, which the config caps below 15 min).
 */
export const FAILOVER_STEP_SIZING: Readonly<Record<FailoverStepName, StepSizing>> = {
  'failover-begin': { memoryMiB: 512, timeout: Duration.minutes(5) },
  'failover-undo': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failover-prepare': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failover-clone': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failover-vm-failed': { memoryMiB: 256, timeout: Duration.minutes(1) },
  'failover-end': { memoryMiB: 256, timeout: Duration.minutes(2) },
  'failback-begin': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failback-sync': { memoryMiB: 1024, timeout: Duration.minutes(15) },
  'failback-cutover': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failback-finish': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'failback-end': { memoryMiB: 256, timeout: Duration.minutes(2) },
};

type Functions = Readonly<Record<FailoverStepName, IFunction>>;

function task(
  scope: Construct,
  step: FailoverStepName,
  fn: IFunction,
  o: { payload?: sfn.TaskInput; resultPath?: string } = {},
) {
  const invoke = new LambdaInvoke(scope, step, {
    stateName: step,
    lambdaFunction: fn,
    payloadResponseOnly: true,
    retryOnServiceExceptions: true,
    taskTimeout: sfn.Timeout.duration(FAILOVER_STEP_SIZING[step].timeout),
    ...o,
  });
  invoke.addRetry(THROTTLE_RETRY);
  invoke.addRetry(TRANSIENT_RETRY);
  return invoke;
}

const CATCH_ALL = [sfn.Errors.ALL];
/** The end steps' input: the execution name (the run id unless the input names one) and the state. */
const endPayload = sfn.TaskInput.fromObject({ 'executionName.$': '$$.Execution.Name', 'state.$': '$' });
const beginPayload = sfn.TaskInput.fromObject({ 'executionName.$': '$$.Execution.Name', 'request.$': '$' });

/**
 * The failover of one job: failover-begin (lease, sweep, the VMs) → undo? → failover-vms (a Map,
 * one VM at a time as `xcr failover` always did: failover-prepare → failover-next? → final-delta,
 * a one-VM run of the job's batch machine on the replication Lambdas, when planned →
 * failover-clone; each step's failure caught into failover-vm-failed, so one VM never stops
 * another) → failover-end. begin, undo and the Map catch into failover-end, which releases the
 * lease, publishes `xcr failover failed` and fails the execution with the error.
 */
export function buildFailoverWorkflow(
  scope: Construct,
  props: { functions: Functions; batch: sfn.IStateMachine },
): sfn.IChainable {
  const fns = props.functions;
  const begin = task(scope, FAILOVER_STATE.begin, fns['failover-begin'], { payload: beginPayload });
  const end = task(scope, FAILOVER_STATE.end, fns['failover-end'], { payload: endPayload });
  const toEnd: sfn.CatchProps = { errors: CATCH_ALL, resultPath: '$.failure' };
  begin.addCatch(end, toEnd);

  const undo = task(scope, FAILOVER_STATE.undo, fns['failover-undo'], { resultPath: '$.report' });
  undo.addCatch(end, toEnd);

  const prepare = task(scope, FAILOVER_STATE.prepare, fns['failover-prepare']);
  const clone = task(scope, FAILOVER_STATE.clone, fns['failover-clone']);
  const vmFailed = task(scope, FAILOVER_STATE.vmFailed, fns['failover-vm-failed']);
  const finalDelta = new StepFunctionsStartExecution(scope, FAILOVER_STATE.finalDelta, {
    stateName: FAILOVER_STATE.finalDelta,
    stateMachine: props.batch,
    integrationPattern: sfn.IntegrationPattern.RUN_JOB,
    // Named after this execution and the VM, so a retried start finds the batch already running;
    // a resumed run (a new execution with the same input `run`) starts a new one.
    name: sfn.JsonPath.format(
      '{}-fd',
      sfn.JsonPath.hash(
        sfn.JsonPath.format('{}/{}', sfn.JsonPath.executionName, sfn.JsonPath.stringAt('$.vm')),
        'MD5',
      ),
    ),
    // failover-prepare wrote the one-VM work list under the run id (the lease's holder).
    input: sfn.TaskInput.fromObject({
      'jobId.$': '$.jobId',
      'runId.$': '$.run',
      'startedAt.$': '$.at',
      batchIndex: 0,
      vmCount: 1,
    }),
    associateWithParent: true,
    // The VM's result is in the run store; failover-clone reads it.
    resultPath: sfn.JsonPath.DISCARD,
  });
  const toVmFailed: sfn.CatchProps = { errors: CATCH_ALL, resultPath: '$.failure' };
  for (const step of [prepare, finalDelta, clone]) step.addCatch(vmFailed, toVmFailed);
  const refused = new sfn.Pass(scope, FAILOVER_STATE.refused, {
    stateName: FAILOVER_STATE.refused,
    outputPath: '$.result',
  });
  const next = new sfn.Choice(scope, FAILOVER_STATE.nextChoice, { stateName: FAILOVER_STATE.nextChoice })
    .when(sfn.Condition.stringEquals('$.next', 'refused'), refused)
    .when(sfn.Condition.stringEquals('$.next', 'final-delta'), finalDelta.next(clone))
    .otherwise(clone);
  const map = new sfn.Map(scope, FAILOVER_STATE.vms, {
    stateName: FAILOVER_STATE.vms,
    itemsPath: '$.vms',
    itemSelector: {
      'jobId.$': '$.jobId',
      'run.$': '$.run',
      'sourceReachable.$': '$.sourceReachable',
      'request.$': '$.request',
      'vm.$': '$$.Map.Item.Value',
    },
    // One VM after the other: a planned VM's final delta is the run's work-list item 0.
    maxConcurrency: 1,
    resultPath: '$.results',
  });
  map.itemProcessor(prepare.next(next));
  map.addCatch(end, toEnd);

  const undoChoice = new sfn.Choice(scope, FAILOVER_STATE.undoChoice, {
    stateName: FAILOVER_STATE.undoChoice,
  })
    .when(sfn.Condition.isPresent('$.request.undo'), undo.next(end))
    .otherwise(map.next(end));
  return begin.next(undoChoice);
}

/**
 * The failback of one VM of a job: failback-begin (lease, refusals, sweep, planned: the copy shut
 * down) → reverse-synced? ⟲ failback-sync (one disk, or one cbt piece of it, per invocation) → cutover? → failback-cutover
 * → failback-finish (planned) → failback-end. Every state before the end catches into it.
 */
export function buildFailbackWorkflow(scope: Construct, props: { functions: Functions }): sfn.IChainable {
  const fns = props.functions;
  const begin = task(scope, FAILBACK_STATE.begin, fns['failback-begin'], { payload: beginPayload });
  const end = task(scope, FAILBACK_STATE.end, fns['failback-end'], { payload: endPayload });
  const sync = task(scope, FAILBACK_STATE.sync, fns['failback-sync']);
  const cutover = task(scope, FAILBACK_STATE.cutover, fns['failback-cutover']);
  const finish = task(scope, FAILBACK_STATE.finish, fns['failback-finish']);
  const toEnd: sfn.CatchProps = { errors: CATCH_ALL, resultPath: '$.failure' };
  for (const step of [begin, sync, cutover, finish]) step.addCatch(end, toEnd);
  cutover.next(finish).next(end);
  const phase = new sfn.Choice(scope, FAILBACK_STATE.cutoverChoice, {
    stateName: FAILBACK_STATE.cutoverChoice,
  })
    .when(sfn.Condition.stringEquals('$.phase', 'cutover'), cutover)
    .when(sfn.Condition.stringEquals('$.phase', 'finish'), finish)
    .otherwise(end);
  const synced = new sfn.Choice(scope, FAILBACK_STATE.syncedChoice, {
    stateName: FAILBACK_STATE.syncedChoice,
  })
    .when(sfn.Condition.stringEquals('$.phase', 'sync'), sync)
    .otherwise(phase);
  sync.next(synced);
  return begin.next(synced);
}

export interface FailoverWorkflowProps {
  readonly job: JobConfig;
  readonly functions: Functions;
  /** The job's batch machine: a planned failover's final delta is a one-VM run of it. */
  readonly batch: sfn.IStateMachine;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * One job's failover and failback state machines, started by hand (console or `aws stepfunctions
 * start-execution --name <run id>`); the execution name is the run id unless the input names one
 * (`run`): an execution name is never reused, so a run that failed is resumed by a new execution
 * with `"run": "<its run id>"` (the records on the pools say how far it got).
 */
export class FailoverWorkflow extends Construct {
  readonly failover: sfn.StateMachine;
  readonly failback: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: FailoverWorkflowProps) {
    super(scope, id);
    const { job } = props;
    this.logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      // failover/<id> never collides with a job log group: a job id has no slash.
      logGroupName: `/aws/vendedlogs/states/xcr/${Stack.of(this).stackName}/failover/${job.id}`,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    const machine = (id: string, comment: string, definition: sfn.IChainable) =>
      new sfn.StateMachine(this, id, {
        comment: `xcr job ${job.id}: ${comment}`,
        stateMachineType: sfn.StateMachineType.STANDARD,
        definitionBody: sfn.DefinitionBody.fromChainable(definition),
        timeout: Duration.hours(24),
        tracingEnabled: true,
        // Payloads are ids, flags and messages (no secrets), so full execution data is safe to log.
        logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      });
    this.failover = machine(
      'FailoverStateMachine',
      'failover (or its undo) of the VMs to the destination pool, started by hand',
      buildFailoverWorkflow(new Construct(this, 'Failover'), props),
    );
    this.failback = machine(
      'FailbackStateMachine',
      'failback of one failed-over VM to the source pool, started by hand',
      buildFailbackWorkflow(new Construct(this, 'Failback'), props),
    );
  }
}
