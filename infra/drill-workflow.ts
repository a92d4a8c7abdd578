import { Duration, type RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { DrillConfig, JobConfig } from '../functions/config/schema.js';
import {
  DRILL_PASSED_METRIC,
  METRICS_NAMESPACE,
  RUN_EVENT_SOURCE,
  runEventDetailType,
  SERVICE_NAME,
} from '../functions/handlers/lambda/names.js';
import {
  DRILL_STATE,
  DRILL_TRIGGER_STATUSES,
  type DrillStepName,
} from '../functions/replication/drill/contract.js';
import { scheduleExpression } from './job-workflow.js';
import type { StepSizing } from './step-lambdas.js';
import { THROTTLE_RETRY, TRANSIENT_RETRY } from './workflow.js';

/** Seconds between two check invocations (each polls the guest for up to a minute itself). */
export const CHECK_WAIT_SECONDS = 10;

/**
 * The drill steps make a few XAPI calls each; boot (VM.start) and teardown (hard shutdown, destroy)
 * may wait on the host for minutes; check polls the guest for one minute per invocation.
 */
export const DRILL_STEP_SIZING: Readonly<Record<DrillStepName, StepSizing>> = {
  'select-points': { memoryMiB: 512, timeout: Duration.minutes(5) },
  'clone-point': { memoryMiB: 512, timeout: Duration.minutes(5) },
  isolate: { memoryMiB: 512, timeout: Duration.minutes(5) },
  boot: { memoryMiB: 512, timeout: Duration.minutes(10) },
  check: { memoryMiB: 256, timeout: Duration.minutes(3) },
  teardown: { memoryMiB: 512, timeout: Duration.minutes(10) },
  report: { memoryMiB: 512, timeout: Duration.minutes(10) },
};

function task(scope: Construct, step: DrillStepName, fn: IFunction, payload?: sfn.TaskInput) {
  const invoke = new LambdaInvoke(scope, step, {
    stateName: step,
    lambdaFunction: fn,
    payloadResponseOnly: true,
    retryOnServiceExceptions: true,
    taskTimeout: sfn.Timeout.duration(DRILL_STEP_SIZING[step].timeout),
    ...(payload ? { payload } : {}),
  });
  invoke.addRetry(THROTTLE_RETRY);
  invoke.addRetry(TRANSIENT_RETRY);
  return invoke;
}

/**
 * The drill of one job: select-points → drill-due? → drill-points (Map over the points, the
 * drill's concurrency: clone-point → isolate → boot → check ⟲ check-wait → teardown) → report.
 * Every step of a point before teardown catches everything into teardown; select-points and the
 * Map catch into report, which removes whatever of this drill is left, releases the drill lease
 * and publishes the result.
 */
export function buildDrillWorkflow(
  scope: Construct,
  props: { job: JobConfig; functions: Readonly<Record<DrillStepName, IFunction>> },
): sfn.IChainable {
  const fns = props.functions;
  const select = task(
    scope,
    DRILL_STATE.selectPoints,
    fns['select-points'],
    sfn.TaskInput.fromObject({ 'drillRun.$': '$$.Execution.Name', 'request.$': '$' }),
  );
  const report = task(
    scope,
    DRILL_STATE.report,
    fns.report,
    sfn.TaskInput.fromObject({ 'drillRun.$': '$$.Execution.Name', 'state.$': '$' }),
  );
  const toReport: sfn.CatchProps = { errors: [sfn.Errors.ALL], resultPath: '$.failure' };
  select.addCatch(report, toReport);

  const clone = task(scope, DRILL_STATE.clonePoint, fns['clone-point']);
  const isolate = task(scope, DRILL_STATE.isolate, fns.isolate);
  const boot = task(scope, DRILL_STATE.boot, fns.boot);
  const check = task(scope, DRILL_STATE.check, fns.check);
  const teardown = task(scope, DRILL_STATE.teardown, fns.teardown);
  const toTeardown: sfn.CatchProps = { errors: [sfn.Errors.ALL], resultPath: '$.failure' };
  for (const step of [clone, isolate, boot, check]) step.addCatch(teardown, toTeardown);
  const wait = new sfn.Wait(scope, DRILL_STATE.checkWait, {
    stateName: DRILL_STATE.checkWait,
    time: sfn.WaitTime.duration(Duration.seconds(CHECK_WAIT_SECONDS)),
  });
  const checked = new sfn.Choice(scope, DRILL_STATE.checkedChoice, { stateName: DRILL_STATE.checkedChoice })
    .when(sfn.Condition.booleanEquals('$.done', true), teardown)
    .otherwise(wait.next(check));
  const perPoint = clone.next(isolate).next(boot).next(check).next(checked);

  const map = new sfn.Map(scope, DRILL_STATE.drillPoints, {
    stateName: DRILL_STATE.drillPoints,
    itemsPath: '$.points',
    itemSelector: {
      'jobId.$': '$.jobId',
      'drillRun.$': '$.drillRun',
      'recoveryPoint.$': '$$.Map.Item.Value.recoveryPoint',
      'vm.$': '$$.Map.Item.Value.vm',
    },
    maxConcurrency: (props.job.drill as DrillConfig).concurrency,
    resultPath: '$.results',
  });
  map.itemProcessor(perPoint);
  map.addCatch(report, toReport);

  const notDue = new sfn.Succeed(scope, DRILL_STATE.notDue, { stateName: DRILL_STATE.notDue });
  const due = new sfn.Choice(scope, DRILL_STATE.dueChoice, { stateName: DRILL_STATE.dueChoice })
    .when(sfn.Condition.booleanEquals('$.due', true), map.next(report))
    .otherwise(notDue);
  return select.next(due);
}

export interface DrillWorkflowProps {
  readonly job: JobConfig;
  readonly functions: Readonly<Record<DrillStepName, IFunction>>;
  readonly deadLetterQueue: sqs.IQueue;
  readonly eventBus: events.IEventBus;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly alarmTopic?: sns.ITopic;
}

/**
 * One job's drill: its state machine, what starts it (a Scheduler schedule for `drill.every` as a
 * schedule; for `{ afterRuns }` an EventBridge rule on the job's `xcr run succeeded|partial` events,
 * select-points deciding whether this run makes a drill due) and the "test reminder" alarm.
 */
export class DrillWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;
  readonly schedule?: scheduler.Schedule;
  readonly afterRunRule?: events.Rule;
  /** No drill of the job passed for `drill.alarmDays`. */
  readonly notPassedAlarm: cw.Alarm;

  constructor(scope: Construct, id: string, props: DrillWorkflowProps) {
    super(scope, id);
    const { job } = props;
    const drill = job.drill;
    if (!drill) throw new Error(`job ${job.id}: no drill configured`);
    this.logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      // drill/<id> never collides with a job log group: a job id has no slash.
      logGroupName: `/aws/vendedlogs/states/xcr/${Stack.of(this).stackName}/drill/${job.id}`,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: `xcr drill of job ${job.id}: boots the newest recovery points in isolation, checks the guests, removes the clones`,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(buildDrillWorkflow(this, props)),
      // Each point takes at most timeoutMinutes to check, plus boot and teardown; points go in batches.
      timeout: Duration.hours(12),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });

    if ('afterRuns' in drill.every) {
      this.afterRunRule = new events.Rule(this, 'AfterRunRule', {
        description: `xcr job ${job.id}: a run succeeded; drill after every ${drill.every.afterRuns}`,
        eventBus: props.eventBus,
        eventPattern: {
          source: [RUN_EVENT_SOURCE],
          detailType: DRILL_TRIGGER_STATUSES.map((status) => runEventDetailType({ status })),
          detail: { jobId: [job.id] },
        },
        targets: [
          new eventTargets.SfnStateMachine(this.stateMachine, {
            input: events.RuleTargetInput.fromObject({
              jobId: events.EventField.fromPath('$.detail.jobId'),
              afterRun: events.EventField.fromPath('$.detail.runId'),
            }),
            retryAttempts: 8,
            maxEventAge: Duration.hours(2),
            deadLetterQueue: props.deadLetterQueue,
          }),
        ],
      });
    } else {
      this.schedule = new scheduler.Schedule(this, 'Schedule', {
        description: `xcr drill of job ${job.id}`,
        schedule: scheduleExpression({ ...job, schedule: drill.every }),
        timeWindow: scheduler.TimeWindow.off(),
        target: new schedulerTargets.StepFunctionsStartExecution(this.stateMachine, {
          input: scheduler.ScheduleTargetInput.fromObject({ jobId: job.id }),
          retryAttempts: 2,
          maxEventAge: Duration.minutes(30),
          deadLetterQueue: props.deadLetterQueue,
        }),
      });
    }

    // report emits DrillPassed (1 or 0) per drill; a day without a 1 (or without any drill, missing
    // data breaching) counts, and alarmDays such days in a row raise the reminder.
    this.notPassedAlarm = new cw.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: DRILL_PASSED_METRIC,
      dimensionsMap: { service: SERVICE_NAME, jobId: job.id },
      statistic: cw.Stats.MAXIMUM,
      period: Duration.days(1),
    }).createAlarm(this, 'NotPassedAlarm', {
      alarmDescription: `xcr job ${job.id}: no recovery drill passed for ${drill.alarmDays} day(s)`,
      threshold: 1,
      evaluationPeriods: drill.alarmDays,
      datapointsToAlarm: drill.alarmDays,
      comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cw.TreatMissingData.BREACHING,
    });
    if (props.alarmTopic) {
      const action = new cwActions.SnsAction(props.alarmTopic);
      this.notPassedAlarm.addAlarmAction(action);
      this.notPassedAlarm.addOkAction(action);
    }
  }
}
