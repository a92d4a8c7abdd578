/** The drill state machine, its schedule or run rule, metrics, alarm and IAM, as CDK synthesizes them. */
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveIntrinsics } from '../../cli/workflow-definitions.js';
import { loadConfigFile, parseConfig } from '../../functions/config/load.js';
import { DRILL_STEP_NAMES } from '../../functions/replication/drill/contract.js';
import { FAILOVER_XAPI_STEPS } from '../../infra/continuous-replication.js';
import { type Synthesized, synthesize } from './synth.js';

type AslValidator = (definition: unknown) => { isValid: boolean; errorsText: () => string };
const validateAsl = createRequire(import.meta.url)('asl-validator') as AslValidator;
process.env.SITE_A_PASSWORD = 'x';
process.env.XCR_PASSWORD = 'x';

type Json = Record<string, unknown>;
type State = {
  Type: string;
  Next?: string;
  End?: boolean;
  Resource?: string;
  TimeoutSeconds?: number;
  Seconds?: number;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[]; ResultPath?: string; Next: string }[];
  Choices?: { Next: string }[];
  Default?: string;
  MaxConcurrency?: number;
  ItemsPath?: string;
  ItemSelector?: Json;
  Parameters?: Json;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
};
type Definition = { StartAt: string; States: Record<string, State> };

const example = loadConfigFile('xcr.config.example.json');
// web drills after every 2nd successful run, db-nightly on its own weekly schedule.
const config = parseConfig(
  {
    ...example,
    jobs: example.jobs.map((j) =>
      j.id === 'web'
        ? { ...j, drill: { every: { afterRuns: 2 }, concurrency: 3, alarmDays: 3 } }
        : {
            ...j,
            drill: {
              every: { cron: '0 4 ? * SUN *', timezone: 'Europe/Paris' },
              check: { xenstore: 'vm-data/ok' },
            },
          },
    ),
  },
  'test',
);

let s: Synthesized;
const resourcesOf = (type: string) =>
  Object.entries(s.json.Resources).filter(([, r]) => r.Type === type) as [string, { Properties: Json }][];
let drills: { logicalId: string; definition: Definition }[];

beforeAll(() => {
  s = synthesize(config);
  drills = resourcesOf('AWS::StepFunctions::StateMachine')
    .filter(([id]) => id.includes('Drill'))
    .map(([logicalId, r]) => ({
      logicalId,
      definition: JSON.parse(resolveIntrinsics(r.Properties.DefinitionString, s.json.Resources) as string),
    }));
}, 180_000);

describe('the drill state machine', () => {
  it('one per job with a drill, valid ASL, states named after the drill steps', () => {
    expect(drills).toHaveLength(2);
    for (const { definition } of drills) {
      const v = validateAsl(definition);
      expect(v.isValid, v.errorsText()).toBe(true);
      expect(definition.StartAt).toBe('select-points');
      expect(Object.keys(definition.States).sort()).toEqual(
        ['select-points', 'drill-due?', 'not-due', 'drill-points', 'report'].sort(),
      );
      const map = definition.States['drill-points']!;
      expect(map.ItemProcessor!.StartAt).toBe('clone-point');
      expect(Object.keys(map.ItemProcessor!.States).sort()).toEqual(
        ['clone-point', 'isolate', 'boot', 'check', 'checked?', 'check-wait', 'teardown'].sort(),
      );
      expect(map.ItemsPath).toBe('$.points');
      expect(map.Next).toBe('report');
      expect(definition.States.report!.End).toBe(true);
      expect(definition.States['select-points']!.Parameters).toMatchObject({
        'drillRun.$': '$$.Execution.Name',
        'request.$': '$',
      });
    }
    const web = drills.find((d) => d.logicalId.includes('web'))!.definition;
    expect(web.States['drill-points']!.MaxConcurrency).toBe(3);
  });

  it('every step before teardown catches everything into teardown; select-points and the Map into report', () => {
    for (const { definition } of drills) {
      const inner = definition.States['drill-points']!.ItemProcessor!.States;
      for (const step of ['clone-point', 'isolate', 'boot', 'check']) {
        expect(inner[step]!.Catch, step).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'teardown' },
        ]);
      }
      expect(inner['clone-point']!.Next).toBe('isolate');
      expect(inner.isolate!.Next).toBe('boot');
      expect(inner.boot!.Next).toBe('check');
      expect(inner.check!.Next).toBe('checked?');
      // check loops through a Wait until it passes (or throws on the timeout, caught into teardown)
      expect(inner['checked?']!.Choices![0]!.Next).toBe('teardown');
      expect(inner['checked?']!.Default).toBe('check-wait');
      expect(inner['check-wait']).toMatchObject({ Type: 'Wait', Seconds: 10, Next: 'check' });
      expect(inner.teardown!.End).toBe(true);
      for (const outer of ['select-points', 'drill-points']) {
        expect(definition.States[outer]!.Catch).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'report' },
        ]);
      }
      // every task retries transient and throttling errors, within its Lambda's timeout
      const tasks = [...Object.entries(definition.States), ...Object.entries(inner)].filter(
        ([, st]) => st.Type === 'Task',
      );
      expect(tasks.map(([n]) => n).sort()).toEqual([...DRILL_STEP_NAMES].sort());
      for (const [, st] of tasks) {
        const errors = st.Retry!.flatMap((r) => r.ErrorEquals);
        expect(errors).toEqual(
          expect.arrayContaining(['XcrTransientError', 'Lambda.TooManyRequestsException']),
        );
        expect(st.TimeoutSeconds).toBeGreaterThan(0);
      }
    }
  });
});

describe('what starts a drill', () => {
  it('drill.every as a schedule: an EventBridge Scheduler schedule with the job id, time zone and a DLQ', () => {
    const schedules = resourcesOf('AWS::Scheduler::Schedule').map(([, r]) => r.Properties);
    const drill = schedules.filter((p) => String(p.Description).startsWith('xcr drill'));
    expect(drill).toHaveLength(1);
    expect(drill[0]).toMatchObject({
      ScheduleExpression: 'cron(0 4 ? * SUN *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
    const target = drill[0]!.Target as Json;
    expect(JSON.parse(target.Input as string)).toEqual({ jobId: 'db-nightly' });
    expect(target.DeadLetterConfig).toBeDefined();
    expect(JSON.stringify(target.Arn)).toContain('Drill');
  });

  it('drill.every { afterRuns }: a rule on the job’s succeeded/partial run events starts the drill with the run id', () => {
    const rules = resourcesOf('AWS::Events::Rule')
      .map(([, r]) => r.Properties)
      .filter((p) => String(p.Description).includes('drill after every'));
    expect(rules).toHaveLength(1);
    expect(rules[0]!.EventPattern).toEqual({
      source: ['xcr'],
      'detail-type': ['xcr run succeeded', 'xcr run partial'],
      detail: { jobId: ['web'] },
    });
    const target = (rules[0]!.Targets as Json[])[0]!;
    expect(target.InputTransformer).toEqual({
      InputPathsMap: { 'detail-jobId': '$.detail.jobId', 'detail-runId': '$.detail.runId' },
      InputTemplate: '{"jobId":<detail-jobId>,"afterRun":<detail-runId>}',
    });
    expect(target.DeadLetterConfig).toBeDefined();
    expect(target.RoleArn).toBeDefined();
  });
});

describe('drill metrics and the test reminder', () => {
  it('an alarm per drill on DrillPassed: alarmDays daily periods without a pass, missing data breaching, to the topic', () => {
    const alarms = resourcesOf('AWS::CloudWatch::Alarm')
      .map(([, r]) => r.Properties)
      .filter((a) => a.MetricName === 'DrillPassed');
    expect(alarms).toHaveLength(2);
    const byJob = (job: string) =>
      alarms.find((a) => (a.Dimensions as { Name: string; Value: string }[]).some((d) => d.Value === job))!;
    expect(byJob('web')).toMatchObject({
      Namespace: 'xcr',
      Statistic: 'Maximum',
      Period: 86400,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
    expect(byJob('web').Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'service', Value: 'xcr' },
        { Name: 'jobId', Value: 'web' },
      ]),
    );
    expect(byJob('db-nightly')).toMatchObject({ EvaluationPeriods: 7 });
    for (const a of alarms) {
      expect(a.AlarmActions).toHaveLength(1);
      expect(a.OKActions).toHaveLength(1);
    }
  });

  it('alarmDays beyond what CloudWatch can evaluate is refused in the config, naming the field', () => {
    expect(() =>
      parseConfig(
        { ...example, jobs: [{ ...example.jobs[0], drill: { every: { afterRuns: 1 }, alarmDays: 30 } }] },
        'test',
      ),
    ).toThrow(/jobs\.0\.drill\.alarmDays: at most 7/);
    expect(() =>
      parseConfig(
        { ...example, jobs: [{ ...example.jobs[0], retention: 2, drill: { every: { afterRuns: 3 } } }] },
        'test',
      ),
    ).toThrow(/jobs\.0\.drill\.every\.afterRuns: at most the job's retention \(2\)/);
    expect(() =>
      parseConfig(
        { ...example, jobs: [{ ...example.jobs[0], drill: { every: { rate: '5 minutes' } } }] },
        'test',
      ),
    ).toThrow(/jobs\.0\.drill\.every/);
  });
});

describe('drill IAM least privilege', () => {
  const statements = () =>
    resourcesOf('AWS::IAM::Policy').flatMap(([id, r]) =>
      ((r.Properties.PolicyDocument as { Statement: Json[] }).Statement ?? []).map((st) => ({ id, st })),
    );
  const actionsOf = (st: Json) => [st.Action].flat() as string[];

  it('seven drill Lambdas in the VPC, from the drill entry points, with the bundled config', () => {
    const fns = resourcesOf('AWS::Lambda::Function')
      .map(([, r]) => r.Properties)
      .filter((p) => String(p.Description).startsWith('xcr drill-workflow step'));
    expect(fns.map((f) => String(f.Description).split(' ').pop()).sort()).toEqual(
      [...DRILL_STEP_NAMES].sort(),
    );
    for (const f of fns) {
      expect(f.VpcConfig).toBeDefined();
      expect((f.Environment as { Variables: Json }).Variables).toMatchObject({
        XCR_CONFIG_FILE: '/var/task/xcr.config.json',
        POWERTOOLS_METRICS_NAMESPACE: 'xcr',
      });
    }
  });

  it('only report puts drill events; teardown has no lease access; the drill machines invoke only drill steps', () => {
    const put = statements().filter(({ st }) => actionsOf(st).includes('events:PutEvents'));
    const drillPut = put.filter((p) => p.id.includes('Drills'));
    expect(drillPut).toHaveLength(1);
    expect(drillPut[0]!.id).toContain('report');
    const lease = statements().filter(
      ({ id, st }) => id.includes('Drills') && actionsOf(st).includes('dynamodb:PutItem'),
    );
    expect(lease.map((l) => l.id).some((id) => id.includes('teardown'))).toBe(false);
    expect(lease).toHaveLength(DRILL_STEP_NAMES.length - 1);
    for (const { definition } of drills) {
      const inner = definition.States['drill-points']!.ItemProcessor!.States;
      for (const st of [...Object.values(definition.States), ...Object.values(inner)]) {
        if (st.Type === 'Task') expect(st.Resource).toMatch(/:function:.*Drills/);
      }
    }
    const invoke = statements().filter(
      ({ id, st }) => id.includes('DrillsDrill') && actionsOf(st).includes('lambda:InvokeFunction'),
    );
    expect(invoke).toHaveLength(2 * DRILL_STEP_NAMES.length);
    for (const { st } of invoke) {
      for (const r of [st.Resource].flat()) expect(JSON.stringify(r)).toMatch(/ReplicationDrillsSteps/);
    }
  });

  it('the drill steps read exactly the pool secrets the replication steps read', () => {
    const grants = statements().filter(({ st }) => actionsOf(st).includes('secretsmanager:GetSecretValue'));
    // 5 replication steps, the drill steps and the failover steps that open the pools
    expect(new Set(grants.map((g) => g.id)).size).toBe(
      5 + DRILL_STEP_NAMES.length + FAILOVER_XAPI_STEPS.length,
    );
  });

  it('cdk-nag and cfn-guard are clean with every acknowledgement reasoned', () => {
    expect(s.nagFindings).toEqual([]);
    expect(s.guardFindings).toEqual([]);
  });
});
