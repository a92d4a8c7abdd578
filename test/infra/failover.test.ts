/** The failover and failback state machines per job, their steps, catches and IAM, as CDK synthesizes them. */
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveIntrinsics } from '../../cli/workflow-definitions.js';
import { loadConfigFile } from '../../functions/config/load.js';
import { FAILOVER_STEP_NAMES } from '../../functions/replication/failover/contract.js';
import { FAILOVER_STEP_SIZING } from '../../infra/failover-workflow.js';
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
  Parameters?: Json;
  Retry?: { ErrorEquals: string[] }[];
  Catch?: { ErrorEquals: string[]; ResultPath?: string; Next: string }[];
  MaxConcurrency?: number;
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
};
type Definition = { StartAt: string; States: Record<string, State> };

const config = loadConfigFile('xcr.config.example.json');
let s: Synthesized;
const machines = (kind: 'Failover' | 'Failback') =>
  Object.entries(s.json.Resources)
    .filter(([id, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && id.includes(`${kind}StateMachine`))
    .map(([logicalId, r]) => ({
      logicalId,
      definition: JSON.parse(
        resolveIntrinsics(r.Properties!.DefinitionString, s.json.Resources) as string,
      ) as Definition,
    }));

beforeAll(() => {
  s = synthesize(config);
}, 180_000);

const catchesInto = (st: State, target: string) =>
  st.Catch?.some(
    (c) => c.ErrorEquals.includes('States.ALL') && c.Next === target && c.ResultPath === '$.failure',
  );

describe('the failover and failback state machines', () => {
  it('one of each per job, valid ASL, Standard, started by hand only (no schedule or rule targets them)', () => {
    for (const kind of ['Failover', 'Failback'] as const) {
      const ms = machines(kind);
      expect(ms).toHaveLength(config.jobs.length);
      for (const job of config.jobs)
        expect(ms.some((m) => m.logicalId.includes(`Failover${job.id.replace(/-/g, '')}`))).toBe(true);
      for (const { definition } of ms) {
        const v = validateAsl(definition);
        expect(v.isValid, v.errorsText()).toBe(true);
      }
    }
    // what schedules and rules start (their targets); the execution-ended rules only match them
    const targets = Object.values(s.json.Resources)
      .filter((r) => /Scheduler::Schedule|Events::Rule/.test(r.Type))
      .map((r) => {
        const p = r.Properties as { Target?: unknown; Targets?: unknown };
        return p.Target ?? p.Targets;
      });
    expect(targets.length).toBeGreaterThan(0);
    expect(JSON.stringify(targets)).not.toMatch(/Fail(over|back)StateMachine/);
  });

  it('failover: begin → undo? → the per-VM Map (one at a time) → end; every state before end catches into it', () => {
    for (const { definition } of machines('Failover')) {
      const st = definition.States;
      expect(definition.StartAt).toBe('failover-begin');
      expect(Object.keys(st).sort()).toEqual(
        ['failover-begin', 'undo?', 'failover-undo', 'failover-vms', 'failover-end'].sort(),
      );
      for (const name of ['failover-begin', 'failover-undo', 'failover-vms'])
        expect(catchesInto(st[name]!, 'failover-end'), name).toBe(true);
      expect(st['failover-begin']!.Parameters).toEqual({
        'executionName.$': '$$.Execution.Name',
        'request.$': '$',
      });
      expect(st['failover-end']!.Parameters).toEqual({
        'executionName.$': '$$.Execution.Name',
        'state.$': '$',
      });
      expect(st['failover-end']!.End).toBe(true);
      const map = st['failover-vms']!;
      expect(map.MaxConcurrency).toBe(1);
      const inner = map.ItemProcessor!.States;
      expect(map.ItemProcessor!.StartAt).toBe('failover-prepare');
      expect(Object.keys(inner).sort()).toEqual(
        [
          'failover-prepare',
          'failover-next?',
          'failover-refused',
          'final-delta',
          'failover-clone',
          'failover-vm-failed',
        ].sort(),
      );
      // one VM's failure never fails the Map: each step catches into vm-failed
      for (const name of ['failover-prepare', 'final-delta', 'failover-clone'])
        expect(catchesInto(inner[name]!, 'failover-vm-failed'), name).toBe(true);
      // the final delta: a one-VM run of the job's batch machine (startExecution.sync:2)
      const fd = inner['final-delta']!;
      expect(fd.Resource).toBe('arn:aws:states:::states:startExecution.sync:2');
      const batch = String((fd.Parameters as Json).StateMachineArn);
      const job = config.jobs.find((j) => batch.includes(`Job${j.id.replace(/-/g, '')}`));
      expect(job).toBeDefined();
      expect(batch).toContain('BatchStateMachine');
      expect(fd.Next).toBe('failover-clone');
    }
  });

  it('failback: begin → reverse-synced? ⟲ failback-sync → cutover? → cutover → finish → end; all catch into end', () => {
    for (const { definition } of machines('Failback')) {
      const st = definition.States;
      expect(definition.StartAt).toBe('failback-begin');
      expect(Object.keys(st).sort()).toEqual(
        [
          'failback-begin',
          'reverse-synced?',
          'failback-sync',
          'cutover?',
          'failback-cutover',
          'failback-finish',
          'failback-end',
        ].sort(),
      );
      for (const name of ['failback-begin', 'failback-sync', 'failback-cutover', 'failback-finish'])
        expect(catchesInto(st[name]!, 'failback-end'), name).toBe(true);
      expect(st['failback-sync']!.Next).toBe('reverse-synced?');
      expect(st['failback-cutover']!.Next).toBe('failback-finish');
      expect(st['failback-finish']!.Next).toBe('failback-end');
    }
  });

  it('every Lambda task: its step function, a timeout within its Lambda timeout, retries on transient errors', () => {
    const fns = Object.entries(s.json.Resources).filter(
      ([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('ReplicationFailoversSteps'),
    );
    expect(fns).toHaveLength(FAILOVER_STEP_NAMES.length);
    for (const kind of ['Failover', 'Failback'] as const) {
      for (const { definition } of machines(kind)) {
        const states = Object.entries(definition.States).flatMap(([n, st]) => [
          [n, st] as const,
          ...Object.entries(st.ItemProcessor?.States ?? {}),
        ]);
        for (const [name, st] of states) {
          if (st.Resource !== 'arn:aws:states:::lambda:invoke') continue;
          const step = name as (typeof FAILOVER_STEP_NAMES)[number];
          expect(FAILOVER_STEP_NAMES).toContain(step);
          expect(String((st.Parameters as Json).FunctionName)).toContain(step.replace(/-/g, ''));
          expect(st.TimeoutSeconds).toBe(FAILOVER_STEP_SIZING[step].timeout.toSeconds());
          expect(st.Retry!.some((r) => r.ErrorEquals.includes('XcrTransientError'))).toBe(true);
        }
      }
    }
  });

  it('cdk-nag and cfn-guard report nothing unacknowledged', () => {
    expect(s.nagFindings).toEqual([]);
    expect(s.guardFindings).toEqual([]);
  });
});
