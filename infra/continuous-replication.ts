import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { XcrConfig } from '../functions/config/schema.js';
import { ENV } from '../functions/handlers/lambda/names.js';
import { STATE, STEP_NAMES, type StepName } from '../functions/replication/contract.js';
import { DRILL_STEP_NAMES, type DrillStepName } from '../functions/replication/drill/contract.js';
import {
  FAILBACK_STATE,
  FAILOVER_STATE,
  FAILOVER_STEP_NAMES,
  type FailoverStepName,
} from '../functions/replication/failover/contract.js';
import { runDashboard } from './dashboard.js';
import { Drills } from './drills.js';
import { Failovers } from './failovers.js';
import { JobWorkflow } from './job-workflow.js';
import { acknowledgeNagFindings } from './nag.js';
import { StepNetwork } from './network.js';
import { RunEnded } from './run-ended.js';
import { STEP_SIZING, StepLambdas } from './step-lambdas.js';

/** Steps that only read or write the run store: no XAPI, so no lease, secret or key for them. */
const RUN_STORE_ONLY: readonly StepName[] = [STATE.loadBatch, STATE.recordFailure];
/** Steps that talk to the pools: they get the pool secrets (and the keys those are encrypted with). */
export const XAPI_STEPS: readonly StepName[] = STEP_NAMES.filter((s) => !RUN_STORE_ONLY.includes(s));
/** Steps that take, renew or release the job lease (the only ones granted the lease table). */
// Every step that writes to a pool renews the lease first (a run that lost it must stop).
export const LEASE_STEPS: readonly StepName[] = XAPI_STEPS;
/** Drill steps that take, renew or release the drill lease (teardown needs none: it removes its own clone). */
export const DRILL_LEASE_STEPS: readonly DrillStepName[] = DRILL_STEP_NAMES.filter((s) => s !== 'teardown');
/** Failover steps that publish no event and open no pool (the others publish, or open the pools). */
const FAILOVER_NO_XAPI: readonly FailoverStepName[] = [
  FAILOVER_STATE.vmFailed,
  FAILOVER_STATE.end,
  FAILBACK_STATE.end,
];
/** Failover steps that open the pools (they get the pool secrets and their keys). */
export const FAILOVER_XAPI_STEPS: readonly FailoverStepName[] = FAILOVER_STEP_NAMES.filter(
  (s) => !FAILOVER_NO_XAPI.includes(s),
);
/** Failover steps that publish `xcr failover …` / `xcr failback …` events. */
export const FAILOVER_EVENT_STEPS: readonly FailoverStepName[] = [
  FAILOVER_STATE.undo,
  FAILOVER_STATE.clone,
  FAILOVER_STATE.vmFailed,
  FAILOVER_STATE.end,
  FAILBACK_STATE.end,
];
/** What each failover step does with the run table: the final delta's one-VM work list and result. */
export const FAILOVER_RUN_TABLE_ACTIONS: Readonly<Partial<Record<FailoverStepName, readonly string[]>>> = {
  [FAILOVER_STATE.prepare]: ['dynamodb:BatchWriteItem', 'dynamodb:Query'],
  [FAILOVER_STATE.clone]: ['dynamodb:BatchWriteItem', 'dynamodb:Query'],
};
/** Steps that publish run events: finish-run, once per run (skipped runs included). */
export const EVENT_STEPS: readonly StepName[] = [STATE.finishRun];
/** What each step does with the run table (nothing for the others). */
export const RUN_TABLE_ACTIONS: Readonly<Partial<Record<StepName, readonly string[]>>> = {
  [STATE.lockCheck]: ['dynamodb:BatchWriteItem'],
  [STATE.loadBatch]: ['dynamodb:Query'],
  [STATE.commitOrRollback]: ['dynamodb:PutItem'],
  [STATE.recordFailure]: ['dynamodb:PutItem'],
  [STATE.finishRun]: ['dynamodb:Query'],
};

export interface ContinuousReplicationProps {
  /**
   * The validated configuration (`loadConfigFile`/`parseConfig`). Pool passwords must be
   * `{ "secret": ... }` references; the file is bundled into every step Lambda as is.
   */
  readonly config: XcrConfig;
  /** The VPC whose subnets route to the XenServer management networks (VPN or Direct Connect). */
  readonly vpc: ec2.IVpc;
  /** Private subnets for the step Lambdas (and the API endpoints), at most one per Availability Zone. */
  readonly subnets: ec2.ISubnet[];
  /** CIDRs of the XAPI hosts: the only destinations the steps may open connections to (443, 80, 10809). */
  readonly xapiCidrs: string[];
  /**
   * Create interface endpoints for Secrets Manager, EventBridge and DynamoDB in `subnets`.
   * Turn off when the VPC already has them (their private DNS names would clash) or uses a NAT gateway;
   * the steps may then send HTTPS anywhere.
   * @default true
   */
  readonly createVpcEndpoints?: boolean;
  /**
   * Replication lag in minutes (age of the newest recovery point) above which a job's lag alarm fires.
   * @default - 3 times the job's schedule interval; 180 for cron schedules
   */
  readonly lagAlarmMinutes?: number;
  /**
   * Email address subscribed to an SNS topic that receives every alarm.
   * @default - no topic; alarms are visible in CloudWatch only
   */
  readonly alarmEmail?: string;
  /**
   * The bus run events go to (source `xcr`, detail-type `xcr run <status>`, detail = the run result).
   * @default - the account's default event bus
   */
  readonly eventBus?: events.IEventBus;
  /**
   * Retention of the step and execution logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Maximum duration of one run; a run beyond it fails (and the lease expires on its own).
   * @default Duration.hours(12)
   */
  readonly executionTimeout?: Duration;
  /**
   * What happens to the lease table and the log groups when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Continuous replication of XenServer / XCP-ng VMs: per job three Step Functions state machines
 * (the run, its batches, each VM's disk loop) and one EventBridge Scheduler schedule, and the
 * failover and failback machines started by hand (plus a drill machine with a drill block); the step
 * Lambdas in the VPC shared by all jobs, DynamoDB lease and run tables, run events, alarms for
 * failed runs and replication lag.
 */
export class ContinuousReplication extends Construct {
  readonly functions: Readonly<Record<StepName, NodejsFunction>>;
  readonly leaseTable: dynamodb.Table;
  /** Each run's VM list and per-VM results (partition key run id, items expire after 14 days). */
  readonly runTable: dynamodb.Table;
  readonly jobs: ReadonlyMap<string, JobWorkflow>;
  readonly deadLetterQueue: sqs.Queue;
  /** Releases the lease and reports runs that end without finish-run (stopped, timed out). */
  readonly runEnded: RunEnded;
  readonly alarmTopic?: sns.Topic;
  /** One row per job: runs, replication lag against its alarm threshold, bytes moved. */
  readonly dashboard: cw.Dashboard;
  /** Recovery drills of the jobs with a `drill` block (absent when none has one). */
  readonly drills?: Drills;
  /** Every job's failover and failback state machines (started by hand) and their step Lambdas. */
  readonly failovers: Failovers;

  constructor(scope: Construct, id: string, props: ContinuousReplicationProps) {
    super(scope, id);
    if (props.xapiCidrs.length === 0) {
      throw new Error(
        'xapiCidrs: list the XAPI host networks, e.g. ["10.0.0.0/24"]; egress is limited to them',
      );
    }
    if (props.subnets.length === 0)
      throw new Error('subnets: give at least one private subnet routed to the VPN');
    this.checkPasswordReferences(props.config);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const eventBus = props.eventBus ?? events.EventBus.fromEventBusName(this, 'DefaultBus', 'default');

    // Both tables: on demand, recoverable, encrypted, items expire through `expiresAt`.
    const table = (id: string, keys: Pick<dynamodb.TableProps, 'partitionKey' | 'sortKey'>) =>
      new dynamodb.Table(this, id, {
        ...keys,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: 'expiresAt',
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy,
      });
    this.leaseTable = table('LeaseTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    });
    this.runTable = table('RunTable', {
      partitionKey: { name: 'runId', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    });

    const network = new StepNetwork(this, 'Network', {
      vpc: props.vpc,
      subnets: props.subnets,
      xapiCidrs: props.xapiCidrs,
      createVpcEndpoints: props.createVpcEndpoints ?? true,
    });
    // What every step Lambda (replication and drill) shares: the VPC, the lease table, the bus.
    const stepProps = {
      config: props.config,
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroup: network.securityGroup,
      environment: {
        ...network.environment,
        [ENV.leaseTable]: this.leaseTable.tableName,
        [ENV.runTable]: this.runTable.tableName,
        [ENV.eventBus]: eventBus.eventBusName,
      },
      logRetention,
      removalPolicy,
    };
    const lambdas = new StepLambdas(this, 'Steps', stepProps);
    const grantLease = (role: iam.IRole) =>
      this.leaseTable.grant(
        role,
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
      );
    this.functions = lambdas.functions;

    for (const step of LEASE_STEPS) grantLease(lambdas.roles[step]);
    for (const [step, actions] of Object.entries(RUN_TABLE_ACTIONS)) {
      this.runTable.grant(lambdas.roles[step as StepName], ...actions);
    }
    for (const step of EVENT_STEPS) eventBus.grantPutEventsTo(lambdas.roles[step]);
    const poolRoles: iam.IRole[] = XAPI_STEPS.map((s) => lambdas.roles[s]);
    const drillRoles: iam.IRole[] = [];
    this.deadLetterQueue = new sqs.Queue(this, 'ScheduleDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    if (props.alarmEmail) {
      this.alarmTopic = new sns.Topic(this, 'AlarmTopic', { displayName: 'xcr alarms', enforceSSL: true });
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    const drillJobs = props.config.jobs.some((j) => j.drill);
    if (drillJobs) {
      this.drills = new Drills(this, 'Drills', {
        ...stepProps,
        deadLetterQueue: this.deadLetterQueue,
        eventBus,
        ...(this.alarmTopic ? { alarmTopic: this.alarmTopic } : {}),
      });
      const roles = this.drills.lambdas.roles;
      // Every drill step but teardown renews the drill lease; report releases it.
      for (const step of DRILL_LEASE_STEPS) grantLease(roles[step]);
      eventBus.grantPutEventsTo(roles.report);
      drillRoles.push(...DRILL_STEP_NAMES.map((s) => roles[s]));
      poolRoles.push(...drillRoles);
    }

    // Every step opens the pools (replication and drill alike): the secrets and their keys, by ARN.
    const secrets = this.passwordSecrets(props.config);
    const grantPools = (roles: readonly iam.IRole[]) => {
      for (const secret of secrets) {
        for (const role of roles) secret.grantRead(role);
      }
      for (const keyArn of kmsKeyArns(props.config)) {
        for (const role of roles) {
          role.addToPrincipalPolicy(
            new iam.PolicyStatement({
              actions: ['kms:Decrypt'],
              resources: [keyArn],
              // Only to decrypt a secret through Secrets Manager, not anything else under the key.
              conditions: {
                StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
              },
            }),
          );
        }
      }
    };
    grantPools(poolRoles);

    const timeouts = Object.fromEntries(STEP_NAMES.map((s) => [s, STEP_SIZING[s].timeout])) as Record<
      StepName,
      Duration
    >;
    const jobs = new Map<string, JobWorkflow>();
    for (const job of props.config.jobs) {
      jobs.set(
        job.id,
        new JobWorkflow(this, `Job-${job.id}`, {
          job,
          functions: lambdas.functions,
          timeouts,
          deadLetterQueue: this.deadLetterQueue,
          logRetention,
          removalPolicy,
          executionTimeout: props.executionTimeout ?? Duration.hours(12),
          ...(props.lagAlarmMinutes !== undefined ? { lagAlarmMinutes: props.lagAlarmMinutes } : {}),
          ...(this.alarmTopic ? { alarmTopic: this.alarmTopic } : {}),
        }),
      );
    }
    this.jobs = jobs;
    this.failovers = new Failovers(this, 'Failovers', {
      ...stepProps,
      batchMachines: new Map([...jobs].map(([id, j]) => [id, j.batchStateMachine])),
    });
    const foRoles = this.failovers.lambdas.roles;
    // Every failover step takes, renews or releases the job lease (each renews it before it acts).
    for (const step of FAILOVER_STEP_NAMES) grantLease(foRoles[step]);
    for (const step of FAILOVER_EVENT_STEPS) eventBus.grantPutEventsTo(foRoles[step]);
    for (const [step, actions] of Object.entries(FAILOVER_RUN_TABLE_ACTIONS))
      this.runTable.grant(foRoles[step as FailoverStepName], ...actions);
    grantPools(FAILOVER_XAPI_STEPS.map((s) => foRoles[s]));
    this.runEnded = new RunEnded(this, 'RunEnded', {
      stateMachines: [...jobs.values()].map((j) => j.stateMachine),
      failoverMachines: [...this.failovers.workflows.values()].map((f) => f.failover),
      failbackMachines: [...this.failovers.workflows.values()].map((f) => f.failback),
      leaseTable: this.leaseTable,
      runTable: this.runTable,
      eventBus,
      logRetention,
      removalPolicy,
    });
    this.dashboard = runDashboard(this, jobs);

    const dlqAlarm = this.deadLetterQueue
      .metricApproximateNumberOfMessagesVisible()
      .createAlarm(this, 'ScheduleDlqAlarm', {
        alarmDescription: 'xcr: a schedule could not start a run (see the dead-letter queue)',
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      });
    if (this.alarmTopic) dlqAlarm.addAlarmAction(new cwActions.SnsAction(this.alarmTopic));

    const drills = this.drills;
    const failovers = [...this.failovers.workflows.values()];
    const foFunctions = FAILOVER_STEP_NAMES.map((s) => this.failovers.lambdas.functions[s]);
    acknowledgeNagFindings({
      stepRoles: [
        ...STEP_NAMES.map((s) => lambdas.roles[s]),
        ...drillRoles,
        ...FAILOVER_STEP_NAMES.map((s) => foRoles[s]),
        this.runEnded.role,
      ],
      stateMachines: [
        ...[...jobs.values()].flatMap((j) =>
          [j.stateMachine, j.batchStateMachine, j.transferStateMachine].map((machine) => ({
            machine,
            functions: STEP_NAMES.map((s) => lambdas.functions[s]),
          })),
        ),
        ...[...(drills?.workflows.values() ?? [])].map((d) => ({
          machine: d.stateMachine,
          functions: DRILL_STEP_NAMES.map((s) => drills!.lambdas.functions[s]),
        })),
        ...failovers.flatMap((f) => [
          { machine: f.failover, functions: foFunctions },
          { machine: f.failback, functions: foFunctions },
        ]),
      ],
      deadLetterQueue: this.deadLetterQueue,
      logGroups: [
        ...lambdas.logGroups,
        this.runEnded.logGroup,
        ...[...jobs.values()].map((j) => j.logGroup),
        ...(drills ? drills.lambdas.logGroups : []),
        ...[...(drills?.workflows.values() ?? [])].map((d) => d.logGroup),
        ...this.failovers.lambdas.logGroups,
        ...failovers.map((f) => f.logGroup),
      ],
      childStarts: [
        ...[...jobs.values()].flatMap((j) => [
          { parent: j.stateMachine, child: j.batchStateMachine },
          { parent: j.batchStateMachine, child: j.transferStateMachine },
        ]),
        // a planned failover's final delta is a one-VM run of the job's batch machine
        ...[...jobs].map(([id, j]) => ({
          parent: this.failovers.workflows.get(id)!.failover,
          child: j.batchStateMachine,
        })),
      ],
    });
  }

  /** On AWS the password comes from Secrets Manager: an `env` reference could never resolve. */
  private checkPasswordReferences(config: XcrConfig): void {
    for (const [name, pool] of Object.entries(config.pools)) {
      if ('env' in pool.password) {
        Annotations.of(this).addError(
          `pools.${name}.password: { "env": "${pool.password.env}" } cannot be read on AWS; store the password in Secrets Manager and use { "secret": "<name or ARN>" }`,
        );
      }
    }
  }

  private passwordSecrets(config: XcrConfig): secretsmanager.ISecret[] {
    const seen = new Map<string, secretsmanager.ISecret>();
    for (const pool of Object.values(config.pools)) {
      if (!('secret' in pool.password)) continue;
      const ref = pool.password.secret;
      if (seen.has(ref)) continue;
      const id = `Secret${seen.size}`;
      let secret: secretsmanager.ISecret;
      if (!ref.startsWith('arn:')) {
        secret = secretsmanager.Secret.fromSecretNameV2(this, id, ref);
      } else if (/:secret:.+-[A-Za-z0-9]{6}$/.test(ref)) {
        // Secrets Manager appends "-" and 6 characters to a name to form the complete ARN.
        secret = secretsmanager.Secret.fromSecretCompleteArn(this, id, ref);
      } else {
        secret = secretsmanager.Secret.fromSecretPartialArn(this, id, ref);
      }
      seen.set(ref, secret);
    }
    return [...seen.values()];
  }
}

/** The customer-managed keys the pool secrets are encrypted with, once each. */
export function kmsKeyArns(config: XcrConfig): string[] {
  const arns = new Set<string>();
  for (const pool of Object.values(config.pools)) {
    if ('secret' in pool.password && pool.password.kmsKeyArn) arns.add(pool.password.kmsKeyArn);
  }
  return [...arns];
}
