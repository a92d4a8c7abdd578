import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../functions/config/load.js';
import { STEP_NAMES } from '../../functions/replication/contract.js';
import { FAILOVER_STEP_NAMES } from '../../functions/replication/failover/contract.js';
import {
  FAILOVER_EVENT_STEPS,
  FAILOVER_RUN_TABLE_ACTIONS,
  FAILOVER_XAPI_STEPS,
  LEASE_STEPS,
  RUN_TABLE_ACTIONS,
  XAPI_STEPS,
} from '../../infra/continuous-replication.js';
import { type Synthesized, synthesize } from './synth.js';

// A password value that must never appear in the template, wherever it might leak from.
const FAKE_PASSWORD = 'Known-Fake-Pa55word-7f3a';
process.env.SITE_A_PASSWORD = FAKE_PASSWORD;
process.env.XCR_PASSWORD = FAKE_PASSWORD;

type Json = Record<string, unknown>;

let s: Synthesized;
const config = loadConfigFile('xcr.config.example.json');

function resourcesOf(type: string): [string, { Properties: Json }][] {
  return Object.entries(s.json.Resources).filter(([, r]) => r.Type === type) as [
    string,
    { Properties: Json },
  ][];
}

beforeAll(() => {
  s = synthesize(config);
}, 180_000);

describe('schedules', () => {
  it('one schedule per job with its expression, time zone, explicit retry policy and a DLQ', () => {
    const schedules = resourcesOf('AWS::Scheduler::Schedule').map(([, r]) => r.Properties);
    expect(schedules).toHaveLength(2);
    const exprs = schedules.map((p) => [p.ScheduleExpression, p.ScheduleExpressionTimezone ?? null]).sort();
    expect(exprs).toEqual([
      ['cron(30 1 * * ? *)', 'Europe/Paris'],
      // A rate has no time zone; CDK writes UTC.
      ['rate(15 minutes)', 'Etc/UTC'],
    ]);
    const dlq = resourcesOf('AWS::SQS::Queue');
    expect(dlq).toHaveLength(1);
    for (const p of schedules) {
      const target = p.Target as Json;
      expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 });
      expect(target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [dlq[0]![0], 'Arn'] } });
      expect(JSON.parse(target.Input as string)).toEqual({
        jobId: expect.stringMatching(/^(web|db-nightly)$/),
        scheduledTime: '<aws.scheduler.scheduled-time>',
      });
      expect(p.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
    }
  });
});

describe('Lambdas and network', () => {
  it('one Node 24 function per step in the configured subnets behind one security group', () => {
    const fns = resourcesOf('AWS::Lambda::Function').filter(([id]) => !id.startsWith('ReplicationRunEnded'));
    expect(fns).toHaveLength(STEP_NAMES.length + FAILOVER_STEP_NAMES.length);
    for (const [, r] of fns) {
      expect(r.Properties.Runtime).toBe('nodejs24.x');
      const vpc = r.Properties.VpcConfig as { SubnetIds: string[]; SecurityGroupIds: unknown[] };
      expect(vpc.SubnetIds).toEqual(config.deployment!.subnetIds);
      expect(vpc.SecurityGroupIds).toHaveLength(1);
      const env = (r.Properties.Environment as { Variables: Json }).Variables;
      expect(env.XCR_CONFIG_FILE).toBe('/var/task/xcr.config.json');
      expect(env.XCR_LEASE_TABLE).toBeDefined();
      expect(env.XCR_RUN_TABLE).toEqual({ Ref: expect.stringMatching(/^ReplicationRunTable/) });
    }
  });

  it('the steps reach only the XAPI networks (443, 80, 10809) and the AWS API endpoints', () => {
    const groups = resourcesOf('AWS::EC2::SecurityGroup');
    const step = groups.find(([id]) => id.includes('StepSecurityGroup'))!;
    const egress = step[1].Properties.SecurityGroupEgress as { CidrIp: string; FromPort: number }[];
    const expected = config.deployment!.xapiCidrs.flatMap((c) => [443, 80, 10809].map((p) => `${c}:${p}`));
    expect(egress.map((e) => `${e.CidrIp}:${e.FromPort}`).sort()).toEqual(expected.sort());
    const toEndpoints = resourcesOf('AWS::EC2::SecurityGroupEgress').map(([, r]) => r.Properties);
    expect(toEndpoints).toEqual([expect.objectContaining({ FromPort: 443, ToPort: 443, IpProtocol: 'tcp' })]);
    const endpoints = resourcesOf('AWS::EC2::VPCEndpoint').map(([, r]) =>
      JSON.stringify(r.Properties.ServiceName),
    );
    expect(endpoints.some((e) => e.includes('secretsmanager'))).toBe(true);
    expect(endpoints.some((e) => e.includes('events'))).toBe(true);
    expect(endpoints.some((e) => e.includes('dynamodb'))).toBe(true);
  });
});

describe('IAM least privilege and secrets', () => {
  const statements = () =>
    resourcesOf('AWS::IAM::Policy').flatMap(([id, r]) =>
      ((r.Properties.PolicyDocument as { Statement: Json[] }).Statement ?? []).map((st) => ({ id, st })),
    );
  const actionsOf = (st: Json) => [st.Action].flat() as string[];

  it('secrets are granted by ARN, exactly those the config names, to the step roles only', () => {
    const grants = statements().filter(({ st }) => actionsOf(st).includes('secretsmanager:GetSecretValue'));
    const resources = new Set(grants.flatMap(({ st }) => [st.Resource].flat().map((r) => JSON.stringify(r))));
    expect(resources.size).toBe(2);
    const text = [...resources].join(' ');
    expect(text).toContain(':secret:xcr/site-a-??????');
    expect(text).toContain('arn:aws:secretsmanager:eu-west-1:123456789012:secret:xcr/site-b-AbC123');
    expect(new Set(grants.map((g) => g.id)).size).toBe(XAPI_STEPS.length + FAILOVER_XAPI_STEPS.length);
  });

  it('no wildcard resource except the actions that cannot be scoped', () => {
    const unscopable =
      /^(ec2:(Create|Describe|Delete|Assign|Unassign)|logs:(Create|Get|Update|Delete|List|Put|Describe)|xray:)/;
    for (const { id, st } of statements()) {
      if ([st.Resource].flat().includes('*')) {
        for (const a of actionsOf(st)) expect(a, `${id} ${a} on *`).toMatch(unscopable);
      }
    }
  });

  const tableStatements = (prefix: string) =>
    statements().filter(({ st }) =>
      [st.Resource].flat().some((r) => JSON.stringify(r).includes(`"${prefix}`)),
    );

  it('the lease table: on demand, point-in-time recovery, TTL on expiresAt, item access only', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
    const all = tableStatements('ReplicationLeaseTable');
    // The execution-ended handler only releases leases.
    const [ended, dynamo] = [
      all.filter(({ id }) => id.includes('RunEnded')),
      all.filter(({ id }) => !id.includes('RunEnded')),
    ];
    expect(ended.map(({ st }) => actionsOf(st))).toEqual([['dynamodb:DeleteItem']]);
    for (const { st } of dynamo) {
      expect(actionsOf(st).sort()).toEqual([
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
      ]);
    }
    // every failover step takes, renews or releases it too
    expect(dynamo).toHaveLength(LEASE_STEPS.length + FAILOVER_STEP_NAMES.length);
  });

  it('the run table: run id + sort key, on demand, point-in-time recovery, TTL; each step only what it does', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'runId', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
    const byRole = tableStatements('ReplicationRunTable').map(({ id, st }) => [
      id.replace(/^Replication(FailoversSteps|Steps)?/, '').replace(/(role|Role)DefaultPolicy.*$/, ''),
      actionsOf(st).sort(),
    ]);
    expect(byRole.sort()).toEqual(
      [
        ['RunEnded', ['dynamodb:Query']],
        ...Object.entries({ ...RUN_TABLE_ACTIONS, ...FAILOVER_RUN_TABLE_ACTIONS }).map(([step, actions]) => [
          step.replace(/-/g, ''),
          [...actions!],
        ]),
      ].sort(),
    );
  });

  it('the execution-ended handler: its logs, lease release, the run table read and events, nothing else, invoked by its three rules only', () => {
    const ended = statements().filter(({ id }) => id.startsWith('ReplicationRunEnded'));
    expect(ended.flatMap(({ st }) => actionsOf(st)).sort()).toEqual([
      'dynamodb:DeleteItem',
      'dynamodb:Query',
      'events:PutEvents',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      // tracing, as every function has it
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
    ]);
    const fn = resourcesOf('AWS::Lambda::Function').find(([id]) => id.startsWith('ReplicationRunEnded'))![0];
    const invokers = resourcesOf('AWS::Lambda::Permission')
      .filter(([, r]) => JSON.stringify(r.Properties.FunctionName).includes(fn))
      .map(([, r]) => {
        expect(r.Properties.Principal).toBe('events.amazonaws.com');
        return (r.Properties.SourceArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      });
    expect(invokers.map((id) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'ReplicationRunEndedFailbackRule',
      'ReplicationRunEndedFailoverRule',
      'ReplicationRunEndedRule',
    ]);
  });

  it('only finish-run, the execution-ended handler and the failover steps that publish may put events', () => {
    const all = statements().filter(({ st }) => actionsOf(st).includes('events:PutEvents'));
    const failover = all
      .filter(({ id }) => id.startsWith('ReplicationFailovers'))
      .map(({ id }) => id.replace(/^ReplicationFailoversSteps/, '').replace(/roleDefaultPolicy.*$/, ''));
    expect(failover.sort()).toEqual(FAILOVER_EVENT_STEPS.map((s) => s.replace(/-/g, '')).sort());
    const put = all.filter(({ id }) => !id.startsWith('ReplicationFailovers'));
    expect(put).toHaveLength(2);
    const ids = put.map((p) => p.id);
    expect(ids.filter((id) => id.includes('finishrun'))).toHaveLength(1);
    expect(ids.filter((id) => id.includes('RunEnded'))).toHaveLength(1);
  });

  it('no secret value anywhere in the template', () => {
    const text = JSON.stringify(s.json);
    expect(text).not.toContain(FAKE_PASSWORD);
    expect(text).not.toMatch(/"password"\s*:\s*"/i);
  });
});

describe('observability', () => {
  it('a failed-runs alarm per state machine and a lag alarm per job (3x interval, cron default)', () => {
    const alarms = resourcesOf('AWS::CloudWatch::Alarm').map(([, r]) => r.Properties);
    const lag = alarms.filter((a) => a.MetricName === 'RecoveryPointAgeMinutes');
    expect(lag.map((a) => a.Threshold).sort()).toEqual([180, 45]);
    for (const a of lag) {
      expect(a).toMatchObject({ Namespace: 'xcr', Statistic: 'Maximum', TreatMissingData: 'breaching' });
      expect(a.Dimensions).toEqual(
        expect.arrayContaining([
          { Name: 'service', Value: 'xcr' },
          { Name: 'jobId', Value: expect.any(String) },
        ]),
      );
    }
    const failed = alarms.filter((a) => JSON.stringify(a.Metrics ?? '').includes('ExecutionsFailed'));
    expect(failed).toHaveLength(2);
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    for (const a of [...lag, ...failed]) expect(a.AlarmActions).toHaveLength(1);
  });
});

describe('dashboard', () => {
  it('one dashboard with a row per job (runs, lag, bytes)', () => {
    const boards = resourcesOf('AWS::CloudWatch::Dashboard');
    expect(boards).toHaveLength(1);
    const body = JSON.stringify(boards[0]![1].Properties.DashboardBody);
    for (const job of config.jobs) {
      for (const title of ['runs', 'newest recovery point age (minutes)', 'bytes moved and failed VMs']) {
        expect(body).toContain(`${job.id}: ${title}`);
      }
    }
  });
});

describe('cdk-nag', () => {
  it('AwsSolutions checks pass with every acknowledgement reasoned', () => {
    expect(s.nagFindings).toEqual([]);
  });
});
