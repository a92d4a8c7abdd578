import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ENV, METRICS_NAMESPACE, SERVICE_NAME } from '../functions/handlers/lambda/names.js';
import { ENDED_STATUSES } from '../functions/replication/contract.js';
import { BUNDLING_DEFAULTS, LAMBDA_DEFAULTS, lambdaEntry } from './step-lambdas.js';

export interface RunEndedProps {
  /** The job state machines (a run's lease is held under the execution name). */
  readonly stateMachines: sfn.IStateMachine[];
  /** The failover and failback state machines (their lease is held under the input's run, else the execution name). */
  readonly failoverMachines?: sfn.IStateMachine[];
  readonly failbackMachines?: sfn.IStateMachine[];
  readonly leaseTable: dynamodb.ITable;
  /** Read for the event: what the run recorded before it ended. */
  readonly runTable: dynamodb.ITable;
  readonly eventBus: events.IEventBus;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The cleanup path of runs that end without finish-run (StopExecution, execution timeout, a
 * failure no Catch handles): an EventBridge rule on the job state machines' status changes to
 * FAILED, TIMED_OUT or ABORTED invokes a small function that releases the run's lease and
 * publishes `xcr run failed`. Two more rules do the same for the failover and failback machines
 * (their target input names the workflow: the function reads the run id from the input as their
 * begin step does, and reports `xcr failover failed` / `xcr failback failed` only if the run still
 * held the lease, i.e. its end step did not run). It needs no VPC: it talks to DynamoDB and
 * EventBridge only.
 */
export class RunEnded extends Construct {
  readonly function: NodejsFunction;
  readonly rule: events.Rule;
  readonly failoverRule: events.Rule | undefined;
  readonly failbackRule: events.Rule | undefined;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RunEndedProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'xcr execution-ended handler (runs, failovers, failbacks)',
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    props.leaseTable.grant(this.role, 'dynamodb:DeleteItem');
    props.runTable.grant(this.role, 'dynamodb:Query');
    props.eventBus.grantPutEventsTo(this.role);
    this.function = new NodejsFunction(this, 'Function', {
      ...LAMBDA_DEFAULTS,
      description:
        'xcr: releases the lease of a run, failover or failback that ended without its end step and reports it failed',
      entry: lambdaEntry('execution-ended'),
      memorySize: 256,
      timeout: Duration.minutes(1),
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        [ENV.leaseTable]: props.leaseTable.tableName,
        [ENV.runTable]: props.runTable.tableName,
        [ENV.eventBus]: props.eventBus.eventBusName,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: BUNDLING_DEFAULTS,
    });
    Validations.of(this.function).acknowledge({
      id: 'cdk-validator-cfnguard::lambda_inside_vpc_check',
      reason:
        'It only calls the DynamoDB and EventBridge APIs (no XAPI host); outside the VPC it needs no endpoints and keeps working when the VPC or its endpoints are what broke the run.',
    });
    const target = (workflow?: 'failover' | 'failback') =>
      new targets.LambdaFunction(this.function, {
        retryAttempts: 8,
        maxEventAge: Duration.hours(2),
        ...(workflow
          ? {
              event: events.RuleTargetInput.fromObject({
                workflow,
                detail: events.EventField.fromPath('$.detail'),
              }),
            }
          : {}),
      });
    const rule = (
      id: string,
      description: string,
      machines: sfn.IStateMachine[],
      workflow?: 'failover' | 'failback',
    ) =>
      new events.Rule(this, id, {
        description,
        eventPattern: {
          source: ['aws.states'],
          detailType: ['Step Functions Execution Status Change'],
          detail: {
            status: [...ENDED_STATUSES],
            stateMachineArn: machines.map((sm) => sm.stateMachineArn),
          },
        },
        targets: [target(workflow)],
      });
    this.rule = rule('Rule', 'xcr: a job execution failed, timed out or was stopped', props.stateMachines);
    const fo = props.failoverMachines ?? [];
    const fb = props.failbackMachines ?? [];
    this.failoverRule = fo.length
      ? rule(
          'FailoverRule',
          'xcr: a failover (or undo) execution failed, timed out or was stopped',
          fo,
          'failover',
        )
      : undefined;
    this.failbackRule = fb.length
      ? rule('FailbackRule', 'xcr: a failback execution failed, timed out or was stopped', fb, 'failback')
      : undefined;
  }
}
