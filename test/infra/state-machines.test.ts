/** The three state machines of each job as synthesized: shape, bounds, catches, child starts and their IAM. */
import { createRequire } from 'node:module';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveIntrinsics } from '../../cli/workflow-definitions.js';
import { loadConfigFile } from '../../functions/config/load.js';
import { ERROR, STEP_NAMES, TRANSFER_INVOCATIONS } from '../../functions/replication/contract.js';
import { type Synthesized, synthesize } from './synth.js';

type AslValidator = (definition: unknown) => { isValid: boolean; errorsText: () => string };
const validateAsl = createRequire(import.meta.url)('asl-validator') as AslValidator;

process.env.SITE_A_PASSWORD = 'not-read';
process.env.XCR_PASSWORD = 'not-read';

type Json = Record<string, unknown>;
type TaskState = {
  Type: string;
  TimeoutSeconds?: number;
  Retry?: { ErrorEquals: string[]; MaxAttempts?: number }[];
  Catch?: { ErrorEquals: string[]; ResultPath?: string; Next: string }[];
  Resource?: string;
  Next?: string;
  MaxConcurrency?: number;
  ItemProcessor?: { States: Record<string, TaskState> };
  ItemsPath?: string;
  ResultPath?: string;
  Parameters?: Json;
};

let s: Synthesized;
type Definition = { StartAt: string; States: Record<string, TaskState> };
type Kind = 'run' | 'batch' | 'transfer';
let definitions: { logicalId: string; kind: Kind; definition: Definition }[];
const config = loadConfigFile('xcr.config.example.json');

function resourcesOf(type: string): [string, { Properties: Json }][] {
  return Object.entries(s.json.Resources).filter(([, r]) => r.Type === type) as [
    string,
    { Properties: Json },
  ][];
}

const KIND_BY_START: Record<string, Kind> = {
  'lock-check': 'run',
  'load-batch': 'batch',
  'stream-delta': 'transfer',
};

beforeAll(() => {
  s = synthesize(config);
  // the job's replication machines (the failover and failback machines are tested in failover.test.ts)
  definitions = resourcesOf('AWS::StepFunctions::StateMachine')
    .filter(([logicalId]) => !logicalId.startsWith('ReplicationFailovers'))
    .map(([logicalId, r]) => {
      const definition = JSON.parse(
        resolveIntrinsics(r.Properties.DefinitionString, s.json.Resources) as string,
      ) as Definition;
      return { logicalId, kind: KIND_BY_START[definition.StartAt]!, definition };
    });
}, 180_000);

const ofKind = (kind: Kind) => definitions.filter((d) => d.kind === kind);
/** A definition's states with the Map's iteration states folded in. */
const flat = (d: Definition) =>
  Object.assign(
    {},
    d.States,
    ...Object.values(d.States).map((st) => st.ItemProcessor?.States ?? {}),
  ) as Record<string, TaskState>;
/** The job a state machine belongs to, from its logical id (Replication Job-<id> …). */
const jobOf = (logicalId: string) =>
  config.jobs.find((j) => logicalId.includes(`Job${j.id.replace(/-/g, '')}`))!;

describe('state machines', () => {
  it('per job three Standard state machines (run, batch, transfer), states named after the steps, valid ASL', () => {
    expect(definitions).toHaveLength(3 * config.jobs.length);
    for (const kind of ['run', 'batch', 'transfer'] as const) {
      expect(
        ofKind(kind)
          .map((d) => jobOf(d.logicalId).id)
          .sort(),
      ).toEqual(config.jobs.map((j) => j.id).sort());
    }
    for (const { definition } of definitions) {
      const result = validateAsl(structuredClone(definition));
      expect(result.errorsText()).toBe('');
      expect(result.isValid).toBe(true);
    }
    for (const { definition } of ofKind('run')) {
      expect(Object.keys(definition.States).sort()).toEqual([
        'batch-failed',
        'batches-left?',
        'finish-run',
        'lock-check',
        'next-batch',
        'run-batch',
        'skipped?',
      ]);
    }
    for (const { definition } of ofKind('batch')) {
      expect(Object.keys(definition.States).sort()).toEqual(['load-batch', 'replicate-vms']);
      const map = definition.States['replicate-vms']!;
      expect(map.ItemsPath).toBe('$.vms');
      // The batch's output is a counter: no list of VM results leaves it.
      expect((map as Json).ResultSelector).toEqual({ 'vms.$': 'States.ArrayLength($)' });
      expect(Object.keys(map.ItemProcessor!.States).sort()).toEqual([
        'commit-failed',
        'commit-or-rollback',
        'disks-done?',
        'record-failure',
        'result-lost',
        'rollback-tried?',
        'snapshot-previous',
        'transfer-disks',
      ]);
    }
    for (const { definition } of ofKind('transfer')) {
      expect(Object.keys(definition.States).sort()).toEqual([
        'count-invocation',
        'stream-delta',
        'transfer-end',
        'transfer-more?',
      ]);
      // At most TRANSFER_INVOCATIONS stream-delta calls per transfer execution.
      const more = definition.States['transfer-more?'] as Json;
      expect(more.Choices).toContainEqual({
        Variable: '$.n',
        NumericGreaterThanEquals: TRANSFER_INVOCATIONS,
        Next: 'transfer-end',
      });
    }
    s.template.allResourcesProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL' }),
    });
  });

  it("the batch Map's MaxConcurrency is the job's concurrency", () => {
    for (const { logicalId, definition } of ofKind('batch')) {
      expect(definition.States['replicate-vms']!.MaxConcurrency).toBe(jobOf(logicalId).concurrency);
    }
  });

  it('lock-check gets the run id from the execution name', () => {
    for (const { definition } of ofKind('run')) {
      expect(definition.States['lock-check']!.Parameters).toEqual({
        'jobId.$': '$.jobId',
        'scheduledTime.$': '$.scheduledTime',
        'runId.$': '$$.Execution.Name',
      });
    }
  });

  it("run-batch and transfer-disks start the job's own child machine and wait for it (startExecution.sync:2)", () => {
    const arnOf = (kind: Kind, jobId: string) => {
      const d = ofKind(kind).find((x) => jobOf(x.logicalId).id === jobId)!;
      return resolveIntrinsics({ Ref: d.logicalId }, s.json.Resources);
    };
    for (const job of config.jobs) {
      const run = ofKind('run').find((d) => jobOf(d.logicalId).id === job.id)!.definition;
      const batch = ofKind('batch').find((d) => jobOf(d.logicalId).id === job.id)!.definition;
      const runBatch = run.States['run-batch']!;
      expect(runBatch.Resource).toBe('arn:aws:states:::states:startExecution.sync:2');
      expect(runBatch.Parameters).toEqual({
        StateMachineArn: arnOf('batch', job.id),
        // Hashed run id + batch index: a retried start of the same batch is the same execution.
        'Name.$': "States.Format('{}-b{}', States.Hash($.runId, 'MD5'), $.batch.index)",
        Input: {
          'jobId.$': '$.jobId',
          'runId.$': '$.runId',
          'startedAt.$': '$.startedAt',
          'batchIndex.$': '$.batch.index',
          'vmCount.$': '$.vmCount',
          'AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$': '$$.Execution.Id',
        },
      });
      expect(runBatch.ResultPath).toBeNull();
      expect(runBatch.Retry).toBeUndefined();
      expect(runBatch.Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.batchFailure', Next: 'batch-failed' },
      ]);
      const transfer = batch.States['replicate-vms']!.ItemProcessor!.States['transfer-disks']!;
      expect(transfer.Resource).toBe('arn:aws:states:::states:startExecution.sync:2');
      expect((transfer.Parameters as Json).StateMachineArn).toBe(arnOf('transfer', job.id));
      expect(transfer.Retry).toBeUndefined();
    }
  });

  it('every Lambda task: timeout within its Lambda timeout, retries on transient and service errors only; every VM failure caught', () => {
    const fnTimeout = new Map(
      resourcesOf('AWS::Lambda::Function').map(([id, r]) => [id, r.Properties.Timeout as number]),
    );
    for (const job of config.jobs) {
      const own = definitions.filter((d) => jobOf(d.logicalId).id === job.id);
      const tasks = Object.assign({}, ...own.map((d) => flat(d.definition))) as Record<string, TaskState>;
      const lambdaTasks = Object.entries(tasks).filter(
        ([, st]) => st.Type === 'Task' && st.Resource!.includes(':function:'),
      );
      expect(lambdaTasks.map(([n]) => n).sort()).toEqual([...STEP_NAMES].sort());
      for (const [name, st] of lambdaTasks) {
        const fnId = st.Resource!.split(':function:')[1]!;
        expect(st.TimeoutSeconds, name).toBeGreaterThan(0);
        expect(st.TimeoutSeconds!, name).toBeLessThanOrEqual(fnTimeout.get(fnId)!);
        const retried = st.Retry!.flatMap((r) => r.ErrorEquals);
        expect(retried).toContain(ERROR.transient);
        expect(retried).toContain('Lambda.ServiceException');
        expect(retried).toContain('Lambda.TooManyRequestsException');
        for (const never of [
          ERROR.permanent,
          ERROR.config,
          'States.ALL',
          'States.TaskFailed',
          'Lambda.Unknown',
        ]) {
          expect(retried, `${name} must not retry ${never}`).not.toContain(never);
        }
        expect(st.Retry!.find((r) => r.ErrorEquals.includes(ERROR.transient))!.MaxAttempts).toBe(3);
      }
      const caught = (name: string) => tasks[name]!.Catch;
      for (const name of ['snapshot-previous', 'transfer-disks']) {
        expect(caught(name)).toEqual([
          { ErrorEquals: ['States.ALL'], ResultPath: '$.failure', Next: 'commit-or-rollback' },
        ]);
      }
      expect(caught('stream-delta')).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.vm.failure', Next: 'transfer-end' },
      ]);
      // commit-or-rollback's own failure stays inside the iteration: one rollback, then record-failure.
      expect(caught('commit-or-rollback')).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.stepFailure', Next: 'rollback-tried?' },
      ]);
      expect(caught('record-failure')).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: null, Next: 'result-lost' },
      ]);
      // Nothing is left for a Catch on the Map; what cannot be caught goes to the execution-ended rule.
      expect(tasks['replicate-vms']!.Catch).toBeUndefined();
      expect(tasks['finish-run']!.Next).toBeUndefined();
    }
    const stream = resourcesOf('AWS::Lambda::Function').find(([id]) => id.includes('streamdelta'))!;
    expect(stream[1].Properties).toMatchObject({ Timeout: 900, MemorySize: 1769 });
  });
});

describe('child executions', () => {
  const statements = () =>
    resourcesOf('AWS::IAM::Policy').flatMap(([id, r]) =>
      ((r.Properties.PolicyDocument as { Statement: Json[] }).Statement ?? []).map((st) => ({ id, st })),
    );
  const actionsOf = (st: Json) => [st.Action].flat() as string[];

  it("a run machine starts, describes and stops its batch machine's executions only, with the managed rule of .sync", () => {
    for (const { logicalId, kind } of definitions) {
      if (kind === 'transfer') continue;
      const child = ofKind(kind === 'run' ? 'batch' : 'transfer').find(
        (d) => jobOf(d.logicalId).id === jobOf(logicalId).id,
      )!;
      const role = (s.json.Resources[logicalId]!.Properties!.RoleArn as { 'Fn::GetAtt': [string] })[
        'Fn::GetAtt'
      ][0];
      const own = statements().filter(({ id }) =>
        id.startsWith(role.replace(/Role[0-9A-F]{8}$/, 'RoleDefaultPolicy')),
      );
      const grant = (action: string) =>
        own.filter(({ st }) => actionsOf(st).includes(action)).map(({ st }) => st);
      expect(grant('states:StartExecution').map((st) => st.Resource)).toEqual([{ Ref: child.logicalId }]);
      for (const action of ['states:DescribeExecution', 'states:StopExecution']) {
        expect(JSON.stringify(grant(action).map((st) => st.Resource))).toContain(
          `{"Ref":"${child.logicalId}"}`,
        );
      }
      const rule = grant('events:PutRule');
      expect(rule).toHaveLength(1);
      expect(actionsOf(rule[0]!).sort()).toEqual([
        'events:DescribeRule',
        'events:PutRule',
        'events:PutTargets',
      ]);
      expect(JSON.stringify(rule[0]!.Resource)).toContain(
        'rule/StepFunctionsGetEventsForStepFunctionsExecutionRule',
      );
    }
  });
});
