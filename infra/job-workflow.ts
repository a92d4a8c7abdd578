import { Duration, type RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type JobConfig, rateMinutes } from '../functions/config/schema.js';
import { LAG_METRIC_NAME, METRICS_NAMESPACE, SERVICE_NAME } from '../functions/handlers/lambda/names.js';
import type { StepName } from '../functions/replication/contract.js';
import { buildBatchWorkflow, buildRunWorkflow, buildTransferWorkflow } from './workflow.js';

/** Lag alarms without an interval to derive from (cron schedules) default to this. */
export const DEFAULT_CRON_LAG_MINUTES = 180;
const MAX_LAG_MINUTES = 7 * 24 * 60;

export interface JobWorkflowProps {
  readonly job: JobConfig;
  readonly functions: Readonly<Record<StepName, IFunction>>;
  readonly timeouts: Readonly<Record<StepName, Duration>>;
  readonly deadLetterQueue: sqs.IQueue;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
  readonly lagAlarmMinutes?: number;
  readonly alarmTopic?: sns.ITopic;
  readonly executionTimeout: Duration;
}

/** Minutes of replication lag that raise the alarm: explicit, or 3× the schedule interval. */
export function lagThresholdMinutes(job: JobConfig, explicit?: number): number {
  if (explicit !== undefined) return explicit;
  const interval = 'rate' in job.schedule ? rateMinutes(job.schedule.rate) : undefined;
  return interval !== undefined ? 3 * interval : DEFAULT_CRON_LAG_MINUTES;
}

/** The EventBridge Scheduler expression for a job's schedule. */
export function scheduleExpression(job: JobConfig): scheduler.ScheduleExpression {
  if ('rate' in job.schedule) {
    const minutes = rateMinutes(job.schedule.rate);
    if (minutes === undefined) throw new Error(`job ${job.id}: bad rate "${job.schedule.rate}"`);
    // A rate has no time zone; CDK writes the unit the way Scheduler wants it (1 hour, 2 hours, …).
    return scheduler.ScheduleExpression.rate(Duration.minutes(minutes));
  }
  return scheduler.ScheduleExpression.expression(
    `cron(${job.schedule.cron})`,
    TimeZone.of(job.schedule.timezone),
  );
}

/**
 * One job: its state machines (the run, its batches at the job's Map concurrency, each VM's disk
 * loop), its schedule and its alarms.
 */
export class JobWorkflow extends Construct {
  /** The run: lock-check, the batch loop, finish-run (the schedule starts it). */
  readonly stateMachine: sfn.StateMachine;
  /** One batch of VMs (a child execution of the run). */
  readonly batchStateMachine: sfn.StateMachine;
  /** One VM's disk loop (a child execution of its batch). */
  readonly transferStateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;
  readonly schedule: scheduler.Schedule;
  readonly failedAlarm: cw.Alarm;
  readonly lagAlarm: cw.Alarm;
  /** Replication lag (minutes) above which `lagAlarm` fires. */
  readonly lagThresholdMinutes: number;

  constructor(scope: Construct, id: string, props: JobWorkflowProps) {
    super(scope, id);
    const { job } = props;
    const logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      // Step Functions delivers logs through CloudWatch vended logs; under this prefix it needs no
      // entry in the account's CloudWatch Logs resource policy (5,120 characters at most, often full).
      logGroupName: `/aws/vendedlogs/states/xcr/${Stack.of(this).stackName}/${job.id}`,
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.logGroup = logGroup;
    const workflow = { job, functions: props.functions, timeouts: props.timeouts };
    const machine = (id: string, comment: string, definition: sfn.IChainable) =>
      new sfn.StateMachine(this, id, {
        comment: `xcr job ${job.id}: ${comment}`,
        stateMachineType: sfn.StateMachineType.STANDARD,
        definitionBody: sfn.DefinitionBody.fromChainable(definition),
        timeout: props.executionTimeout,
        tracingEnabled: true,
        // Payloads are ids and counters (no secrets), so full execution data is safe to log.
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      });
    // Each machine's states live in their own scope: state ids are unique per scope.
    this.transferStateMachine = machine(
      'TransferStateMachine',
      "one VM's disk loop (part of a batch)",
      buildTransferWorkflow(new Construct(this, 'Transfer'), workflow),
    );
    this.batchStateMachine = machine(
      'BatchStateMachine',
      'one batch of VMs (part of a run)',
      buildBatchWorkflow(new Construct(this, 'Batch'), workflow, this.transferStateMachine),
    );
    this.stateMachine = machine(
      'StateMachine',
      'one run replicates every selected VM once',
      buildRunWorkflow(new Construct(this, 'Run'), workflow, this.batchStateMachine),
    );

    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: `xcr job ${job.id}${job.name ? `: ${job.name}` : ''}`,
      schedule: scheduleExpression(job),
      timeWindow: scheduler.TimeWindow.off(),
      target: new schedulerTargets.StepFunctionsStartExecution(this.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject({
          jobId: job.id,
          scheduledTime: scheduler.ContextAttribute.scheduledTime,
        }),
        // A late run is worth little and the next one comes soon: few attempts, short age.
        retryAttempts: 2,
        maxEventAge: Duration.minutes(5),
        deadLetterQueue: props.deadLetterQueue,
      }),
    });

    const period = Duration.minutes(5);
    const failures = new cw.MathExpression({
      expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
      usingMetrics: {
        failed: this.stateMachine.metricFailed({ period }),
        timedOut: this.stateMachine.metricTimedOut({ period }),
        aborted: this.stateMachine.metricAborted({ period }),
      },
      label: 'failed, timed out or aborted runs',
      period,
    });
    this.failedAlarm = failures.createAlarm(this, 'FailedRunsAlarm', {
      alarmDescription: `xcr job ${job.id}: a run failed, timed out or was aborted`,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
    });

    const lag = lagThresholdMinutes(job, props.lagAlarmMinutes);
    this.lagThresholdMinutes = lag;
    if (lag > MAX_LAG_MINUTES) {
      throw new Error(
        `job ${job.id}: lagAlarmMinutes ${lag} exceeds ${MAX_LAG_MINUTES} (CloudWatch evaluates at most 7 days); lower it`,
      );
    }
    // The metric is emitted when a run produced a recovery point; no data for the whole window means
    // no new recovery point for `lag` minutes, which is the condition itself: missing data breaches.
    const periodMinutes = Math.min(lag, 24 * 60);
    this.lagAlarm = new cw.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: LAG_METRIC_NAME,
      // The finish-run entry point emits it through Powertools, which adds the `service` dimension.
      dimensionsMap: { service: SERVICE_NAME, jobId: job.id },
      statistic: cw.Stats.MAXIMUM,
      period: Duration.minutes(periodMinutes),
    }).createAlarm(this, 'LagAlarm', {
      alarmDescription: `xcr job ${job.id}: the newest recovery point is older than ${lag} minutes`,
      threshold: lag,
      evaluationPeriods: Math.ceil(lag / periodMinutes),
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cw.TreatMissingData.BREACHING,
    });

    if (props.alarmTopic) {
      const action = new cwActions.SnsAction(props.alarmTopic);
      for (const alarm of [this.failedAlarm, this.lagAlarm]) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
  }
}
