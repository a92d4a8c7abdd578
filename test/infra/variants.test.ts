import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveIntrinsics } from '../../cli/workflow-definitions.js';
import { parseConfig } from '../../functions/config/load.js';
import type { XcrConfig } from '../../functions/config/schema.js';
import { lagThresholdMinutes, scheduleExpression } from '../../infra/job-workflow.js';
import { XcrStack } from '../../infra/stack.js';
import { bundledFiles } from '../../infra/step-lambdas.js';

const base = {
  version: 1,
  pools: {
    a: { url: 'http://10.0.0.10', allowPlainHttp: true, password: { env: 'POOL_A_PASSWORD' } },
    b: { url: 'http://10.1.0.10', allowPlainHttp: true, password: { secret: 'xcr/b' } },
  },
  jobs: [
    {
      id: 'hourly',
      source: { pool: 'a' },
      destination: { pool: 'b', sr: { name: 'sr' } },
      vms: { tag: 't' },
      schedule: { rate: '2 hours' },
    },
  ],
};
const job = (schedule: unknown) => parseConfig({ ...base, jobs: [{ ...base.jobs[0], schedule }] }).jobs[0]!;

describe('pure helpers', () => {
  it('lag threshold: explicit, else 3x the rate interval, else the cron default', () => {
    expect(lagThresholdMinutes(job({ rate: '15 minutes' }))).toBe(45);
    expect(lagThresholdMinutes(job({ rate: '1 day' }))).toBe(3 * 1440);
    expect(lagThresholdMinutes(job({ cron: '0 2 * * ? *' }))).toBe(180);
    expect(lagThresholdMinutes(job({ rate: '15 minutes' }), 20)).toBe(20);
  });

  it('schedule expressions in the form Scheduler accepts', () => {
    const render = (s: unknown) => {
      const e = scheduleExpression(job(s));
      return [e.expressionString, e.timeZone?.timezoneName];
    };
    // A rate has no time zone of its own; CDK states UTC.
    expect(render({ rate: '60 minutes' })).toEqual(['rate(1 hour)', 'Etc/UTC']);
    expect(render({ rate: '10 minutes' })).toEqual(['rate(10 minutes)', 'Etc/UTC']);
    expect(render({ cron: '0/15 * * * ? *', timezone: 'America/New_York' })).toEqual([
      'cron(0/15 * * * ? *)',
      'America/New_York',
    ]);
  });

  it('resolves Fn::Join, Ref and Fn::GetAtt to placeholder values', () => {
    const resources = { Fn1: { Type: 'AWS::Lambda::Function' } };
    const def = resolveIntrinsics(
      {
        'Fn::Join': [
          '',
          ['{"R":"', { 'Fn::GetAtt': ['Fn1', 'Arn'] }, '","P":"', { Ref: 'AWS::Partition' }, '"}'],
        ],
      },
      resources,
    );
    expect(JSON.parse(def as string)).toEqual({
      R: 'arn:aws:lambda:us-east-1:123456789012:function:Fn1',
      P: 'aws',
    });
    expect(() => resolveIntrinsics({ 'Fn::ImportValue': 'x' }, resources)).toThrow(/unsupported intrinsic/);
  });
});

describe('a deployment without endpoints, email, secrets for every pool or a fixed env', () => {
  let stack: XcrStack;
  let template: Template;
  const config: XcrConfig = parseConfig({
    ...base,
    deployment: { vpcId: 'vpc-0123abcd', subnetIds: ['subnet-0123abcd'], xapiCidrs: ['10.0.0.0/16'] },
  });

  beforeAll(() => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    stack = new XcrStack(app, 'Variant', { config, createVpcEndpoints: false });
    template = Template.fromStack(stack);
  }, 180_000);

  it('refuses an env password reference on AWS with a message naming the fix', () => {
    const errors = Annotations.fromStack(stack).findError(
      '*',
      Match.stringLikeRegexp('pools\\.a\\.password'),
    );
    expect(errors).toHaveLength(1);
    expect(JSON.stringify(errors[0]!.entry.data)).toContain('Secrets Manager');
  });

  it('without endpoints: HTTPS egress for the AWS APIs, no endpoint resources; no topic without email', () => {
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    template.resourceCountIs('AWS::SNS::Topic', 0);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupEgress: [
        {
          CidrIp: '10.0.0.0/16',
          FromPort: 443,
          ToPort: 443,
          IpProtocol: 'tcp',
          Description: 'XAPI 10.0.0.0/16:443',
        },
        {
          CidrIp: '10.0.0.0/16',
          FromPort: 80,
          ToPort: 80,
          IpProtocol: 'tcp',
          Description: 'XAPI 10.0.0.0/16:80',
        },
        {
          CidrIp: '10.0.0.0/16',
          FromPort: 10809,
          ToPort: 10809,
          IpProtocol: 'tcp',
          Description: 'XAPI 10.0.0.0/16:10809',
        },
        {
          CidrIp: '0.0.0.0/0',
          FromPort: 443,
          ToPort: 443,
          IpProtocol: 'tcp',
          Description: 'AWS APIs via NAT or endpoints',
        },
      ],
    });
  });

  it('the lag alarm of a 2-hour schedule fires after 6 hours without a new recovery point', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RecoveryPointAgeMinutes',
      Threshold: 360,
      Period: 360 * 60,
      EvaluationPeriods: 1,
    });
  });

  it('cdk-nag is clean in this variant too', () => {
    const report = new AwsSolutionsChecks(stack.node.root as App).validateScope(stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });

  it('a stack without a deployment block is refused with the fix', () => {
    const { deployment: _omit, ...local } = config;
    expect(() => new XcrStack(new App(), 'NoDeployment', { config: local })).toThrow(/"deployment" block/);
  });
});

describe('files bundled with the step Lambdas', () => {
  it('the validated config, and CA bundles copied in with the config pointing at the copies', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xcr-ca-'));
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'ca.pem'), pem);
    const config = parseConfig({
      ...base,
      pools: {
        ...base.pools,
        b: { url: 'https://10.1.0.10', password: { secret: 'xcr/b' }, tlsCaFile: join(dir, 'ca.pem') },
      },
    });
    const files = bundledFiles(config);
    expect(files.get('ca/b.pem')).toBe(pem);
    const bundled = parseConfig(JSON.parse(files.get('xcr.config.json')!));
    expect(bundled.pools.b?.tlsCaFile).toBe('/var/task/ca/b.pem');
    expect(bundled.jobs).toEqual(config.jobs);
    rmSync(dir, { recursive: true, force: true });
    const missing = parseConfig({
      ...base,
      pools: {
        ...base.pools,
        b: { url: 'https://10.1.0.10', password: { secret: 'xcr/b' }, tlsCaFile: '/nonexistent.pem' },
      },
    });
    expect(() => bundledFiles(missing)).toThrow(/pools\.b\.tlsCaFile: cannot read \/nonexistent\.pem/);
  });
});
