import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../functions/config/load.js';
import type { XcrConfig } from '../../functions/config/schema.js';
import { parseStatusChange } from '../../functions/handlers/lambda/execution-ended.js';
import { FAILOVER_XAPI_STEPS, XAPI_STEPS } from '../../infra/continuous-replication.js';
import { DeploymentError, deploymentProblems, stackEnvironment } from '../../infra/environment.js';
import { type Synthesized, synthesize } from './synth.js';

const example = loadConfigFile('xcr.config.example.json');
const KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

function withKey(config: XcrConfig): XcrConfig {
  const pool = config.pools['site-b']!;
  if (!('secret' in pool.password)) throw new Error('example pool site-b uses a secret');
  return {
    ...config,
    pools: { ...config.pools, 'site-b': { ...pool, password: { ...pool.password, kmsKeyArn: KEY } } },
  };
}

let s: Synthesized;
beforeAll(() => {
  s = synthesize(withKey(example));
}, 180_000);

describe('deployable as-is', () => {
  it('execution log groups are under /aws/vendedlogs/states/', () => {
    const groups = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::Logs::LogGroup');
    const names = groups.map((g) => g.Properties?.LogGroupName).filter((n) => typeof n === 'string');
    expect(names.sort()).toEqual(
      example.jobs
        .flatMap((j) => [j.id, `failover/${j.id}`])
        .map((id) => `/aws/vendedlogs/states/xcr/XcrTest/${id}`)
        .sort(),
    );
  });

  it('every step Lambda traces actively (X-Ray)', () => {
    s.template.allResourcesProperties('AWS::Lambda::Function', { TracingConfig: { Mode: 'Active' } });
  });

  it('a secret with kmsKeyArn: kms:Decrypt on that key only through Secrets Manager of the region', () => {
    const policies = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::IAM::Policy');
    const statements = policies.flatMap(
      (p) => (p.Properties!.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
    );
    const decrypt = statements.filter((st) => st.Action === 'kms:Decrypt');
    expect(decrypt).toHaveLength(XAPI_STEPS.length + FAILOVER_XAPI_STEPS.length);
    for (const st of decrypt) {
      expect(st).toEqual({
        Action: 'kms:Decrypt',
        Effect: 'Allow',
        Resource: KEY,
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
      });
    }
  });

  it('the lease table is encrypted with a KMS key', () => {
    s.template.hasResourceProperties('AWS::DynamoDB::Table', {
      SSESpecification: Match.objectLike({ SSEEnabled: true }),
    });
  });

  it('cfn-guard (Control Tower rules) passes with every acknowledgement reasoned', () => {
    expect(s.guardFindings).toEqual([]);
  });

  it('cfn-guard reports a finding that is not acknowledged', () => {
    const other = synthesize(example, {
      extend: (stack) =>
        new logs.LogGroup(stack, 'Unacknowledged', { retention: logs.RetentionDays.ONE_WEEK }),
    });
    expect(other.guardFindings.sort()).toEqual([
      'cloudwatch_log_group_encrypted_check XcrTest/Unacknowledged/Resource',
      'cloudwatch_log_group_retention_period_check XcrTest/Unacknowledged/Resource',
    ]);
  }, 120_000);
});

describe('account and region pinned and checked', () => {
  const base = example;
  const env = (account?: string, region?: string) =>
    stackEnvironment(base, { CDK_DEFAULT_ACCOUNT: account, CDK_DEFAULT_REGION: region });

  it('the deployment block wins over the CDK environment', () => {
    expect(env('999999999999', 'us-east-1')).toEqual({
      account: '123456789012',
      region: 'eu-west-1',
      source: { account: 'config', region: 'config' },
    });
    const { account: _a, region: _r, ...rest } = base.deployment!;
    const unpinned = { ...base, deployment: rest };
    expect(stackEnvironment(unpinned, { CDK_DEFAULT_REGION: 'us-east-1' })).toEqual({
      region: 'us-east-1',
      source: { account: 'none', region: 'cdk' },
    });
  });

  it('refuses zones and secrets of another region or account, naming the field', () => {
    const problems = deploymentProblems(base, {
      account: '210987654321',
      region: 'us-east-1',
      source: { account: 'cdk', region: 'cdk' },
    });
    expect(problems).toEqual([
      expect.stringMatching(
        /^deployment\.availabilityZones\.0: "eu-west-1a" is not in us-east-1 \(CDK_DEFAULT_REGION\)/,
      ),
      expect.stringMatching(/^deployment\.availabilityZones\.1: "eu-west-1b" is not in us-east-1/),
      expect.stringMatching(
        /^pools\.site-b\.password\.secret: the ARN is in eu-west-1 but the stack deploys to us-east-1 .*replicate the secret/,
      ),
      expect.stringMatching(
        /^pools\.site-b\.password\.secret: the ARN is in account 123456789012 .*add "kmsKeyArn"/,
      ),
    ]);
    expect(deploymentProblems(base, stackEnvironment(base, {}))).toEqual([]);
  });

  it('the stack throws one DeploymentError before building anything', () => {
    const cfg = parseConfig({
      ...JSON.parse(JSON.stringify(base)),
      deployment: { ...base.deployment, region: 'us-east-1' },
    });
    expect(() => synthesize(cfg, { env: undefined })).toThrow(DeploymentError);
    expect(() => synthesize(cfg, { env: undefined })).toThrow(
      /availabilityZones\.0: "eu-west-1a" is not in us-east-1 \(deployment\.region\)/,
    );
  });
});

describe('npm run synth explains itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xcr-synth-cli-'));
  function synth(config: unknown, env: Record<string, string> = {}) {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(config));
    try {
      const out = execFileSync('npx', ['tsx', 'infra/app.ts'], {
        env: {
          ...process.env,
          ...env,
          XCR_CONFIG: file,
          CDK_OUTDIR: join(dir, 'out'),
          CDK_CONTEXT_JSON: JSON.stringify({ 'aws:cdk:bundling-stacks': [] }),
        },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { code: 0, stderr: '', out };
    } catch (err) {
      const e = err as { status: number; stderr: string };
      return { code: e.status, stderr: e.stderr, out: '' };
    }
  }

  it('a config without deployment: one message naming the block, with an example, no stack trace', () => {
    const { deployment: _d, ...noDeployment } = JSON.parse(JSON.stringify(example));
    const r = synth(noDeployment);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the configuration has no "deployment" block; add one to deploy to AWS, e\.g\./);
    expect(r.stderr).toContain('"subnetIds"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});

describe('runs that end without finish-run', () => {
  type RuleProps = {
    EventPattern: {
      source: string[];
      'detail-type': string[];
      detail: { status: string[]; stateMachineArn: unknown[] };
    };
    Targets: {
      Arn: { 'Fn::GetAtt': [string, string] };
      InputTransformer?: { InputTemplate: string; InputPathsMap: Record<string, string> };
    }[];
  };
  const rules = () =>
    Object.entries(s.json.Resources)
      .filter(([, r]) => r.Type === 'AWS::Events::Rule')
      .map(([id, r]) => ({ id, props: r.Properties as RuleProps }));
  const machinesLike = (re: RegExp) =>
    Object.entries(s.json.Resources)
      .filter(([id, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && re.test(id))
      .map(([id]) => ({ Ref: id }));
  const expectEndedRule = (props: RuleProps, machines: { Ref: string }[]) => {
    expect(props.EventPattern.source).toEqual(['aws.states']);
    expect(props.EventPattern['detail-type']).toEqual(['Step Functions Execution Status Change']);
    expect(props.EventPattern.detail.status).toEqual(['FAILED', 'TIMED_OUT', 'ABORTED']);
    expect(props.EventPattern.detail.stateMachineArn).toEqual(machines);
    expect(props.Targets).toHaveLength(1);
    const target = props.Targets[0]!.Arn['Fn::GetAtt'][0];
    expect(s.json.Resources[target]!.Type).toBe('AWS::Lambda::Function');
    expect(target).toMatch(/^ReplicationRunEndedFunction/);
  };

  it('EventBridge rules on FAILED/TIMED_OUT/ABORTED executions of the job, failover and failback machines invoke the execution-ended handler', () => {
    expect(
      rules()
        .map((r) => r.id.replace(/[0-9A-F]{8}$/, ''))
        .sort(),
    ).toEqual([
      'ReplicationRunEndedFailbackRule',
      'ReplicationRunEndedFailoverRule',
      'ReplicationRunEndedRule',
    ]);
  });

  it('the job runs: the rule passes the event as it is', () => {
    const { props } = rules().find((r) => /^ReplicationRunEndedRule/.test(r.id))!;
    // the runs only: a child (batch, transfer) that fails is caught by its parent (and a planned
    // failover's final delta is stopped with the failover execution that started it)
    const machines = machinesLike(/^(?!.*(Batch|Transfer|Failover|Failback)StateMachine)/);
    expect(machines).toHaveLength(2);
    expectEndedRule(props, machines);
    expect(props.Targets[0]!.InputTransformer).toBeUndefined();
  });

  it.each([
    ['failover', 'Failover'],
    ['failback', 'Failback'],
  ])("every job's %s machine: its rule names the workflow in the target input", (workflow, name) => {
    const { props } = rules().find((r) => new RegExp(`^ReplicationRunEnded${name}Rule`).test(r.id))!;
    const machines = machinesLike(new RegExp(`^ReplicationFailovers.*${name}StateMachine`));
    expect(machines).toHaveLength(example.jobs.length);
    expectEndedRule(props, machines);
    const t = props.Targets[0]!.InputTransformer!;
    expect(t.InputPathsMap).toEqual({ detail: '$.detail' });
    // the detail goes in as an object, not a string
    expect(t.InputTemplate).toBe(`{"workflow":"${workflow}","detail":<detail>}`);
  });

  it('parseStatusChange reads the run from the event, and ignores what needs no cleanup', () => {
    const detail = {
      name: 'web-20261201T100000000Z',
      status: 'ABORTED',
      startDate: Date.UTC(2026, 11, 1, 10),
      stopDate: Date.UTC(2026, 11, 1, 10, 5),
      input: JSON.stringify({ jobId: 'web', scheduledTime: '2026-12-01T10:00:00Z' }),
      error: null,
      cause: null,
    };
    expect(parseStatusChange({ detail })).toEqual({
      jobId: 'web',
      runId: 'web-20261201T100000000Z',
      status: 'ABORTED',
      startedAt: '2026-12-01T10:00:00.000Z',
      stoppedAt: '2026-12-01T10:05:00.000Z',
    });
    expect(parseStatusChange({ detail: { ...detail, status: 'SUCCEEDED' } })).toBeUndefined();
    expect(parseStatusChange({ detail: { ...detail, input: '{"other":1}' } })).toBeUndefined();
    expect(parseStatusChange({ detail: { ...detail, input: 'not json' } })).toBeUndefined();
  });
});
