import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDefinition } from '../../../cli/definition-cache.js';
import { runExecution, type StateEvent, type StepHandlers } from '../../../cli/local-runner.js';
import {
  ERROR,
  parseStepInput,
  runInput,
  STEP_NAMES,
  STEP_PAYLOADS,
  type StepName,
  type StepOutput,
} from '../../../functions/replication/contract.js';
import { arbitraryOf } from '../../support/payload-arbitrary.js';
import { NamedError } from '../../support/workflow-fakes.js';
import { workflowTestConfig } from './config.js';

type State = {
  Type: string;
  Next?: string;
  Default?: string;
  Choices?: { Next: string }[];
  Catch?: { Next: string }[];
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
};

/** Every transition of the definition, as "<from> -> <to> (<how>)". */
function definedTransitions(def: { StartAt: string; States: Record<string, State> }): Set<string> {
  const edges = new Set<string>([`(start) -> ${def.StartAt} (start)`]);
  const walk = (states: Record<string, State>) => {
    for (const [name, s] of Object.entries(states)) {
      if (s.Next) edges.add(`${name} -> ${s.Next} (next)`);
      if (s.Default) edges.add(`${name} -> ${s.Default} (default)`);
      for (const c of s.Choices ?? []) edges.add(`${name} -> ${c.Next} (choice)`);
      for (const c of s.Catch ?? []) edges.add(`${name} -> ${c.Next} (catch)`);
      if (s.ItemProcessor) {
        edges.add(`${name} -> ${s.ItemProcessor.StartAt} (items)`);
        walk(s.ItemProcessor.States);
      }
    }
  };
  walk(def.States);
  return edges;
}

/** The transitions an execution took, from its event log (one scope per Map iteration). */
function takenTransitions(events: StateEvent[], def: { States: Record<string, State> }): string[] {
  const choiceDefault = new Map<string, string>();
  const collect = (states: Record<string, State>) => {
    for (const [name, s] of Object.entries(states)) {
      if (s.Default) choiceDefault.set(name, s.Default);
      if (s.ItemProcessor) collect(s.ItemProcessor.States);
    }
  };
  collect(def.States);
  const scopes = new Map<string, { last: string; caught: boolean }>();
  const taken: string[] = [];
  let map = '';
  for (const e of events) {
    if (e.type === 'MapIterationStarted') map = e.parentState.name;
    if (e.type !== 'StateEntered' && e.type !== 'StateCaught') continue;
    const key = e.index === undefined ? 'top' : `item-${e.index}`;
    const scope = scopes.get(key);
    if (e.type === 'StateCaught') {
      if (scope) scope.caught = true;
      continue;
    }
    const name = e.state.name;
    if (!scope) taken.push(key === 'top' ? `(start) -> ${name} (start)` : `${map} -> ${name} (items)`);
    else {
      const how = scope.caught
        ? 'catch'
        : choiceDefault.has(scope.last)
          ? choiceDefault.get(scope.last) === name
            ? 'default'
            : 'choice'
          : 'next';
      taken.push(`${scope.last} -> ${name} (${how})`);
    }
    scopes.set(key, { last: name, caught: false });
  }
  return taken;
}

const outputs = <S extends StepName>(step: S) =>
  arbitraryOf(STEP_PAYLOADS[step].output) as fc.Arbitrary<StepOutput<S>>;
const perVm = fc.record({
  outcome: fc.constantFrom('committed', 'snapshot fails', 'stream fails', 'commit throws'),
  loops: fc.integer({ min: 0, max: 2 }),
  snapshot: outputs('snapshot-previous'),
  streams: fc.array(outputs('stream-delta'), { minLength: 3, maxLength: 3 }),
  commit: outputs('commit-or-rollback'),
});
const scenario = fc.record({
  input: arbitraryOf(runInput),
  lock: outputs('lock-check'),
  vms: fc.array(perVm, { maxLength: 3 }),
  finish: outputs('finish-run'),
  message: fc.string({ maxLength: 40 }),
});
type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/**
 * Handlers that return generated payloads and record, for every state input they receive, whether
 * the step's own input parser gives back exactly what Step Functions handed over.
 */
function generatedHandlers(s: Scenario, problems: string[]): StepHandlers {
  const vmIndex = (raw: unknown) => Number((raw as { vmUuid: string }).vmUuid.slice(3));
  const streamCalls = new Map<number, number>();
  const check = (step: StepName, raw: unknown) => {
    try {
      const parsed = parseStepInput(step, raw);
      if (!isDeepStrictEqual(parsed, raw)) problems.push(`${step}: ${JSON.stringify({ raw, parsed })}`);
    } catch (err) {
      problems.push(`${step}: ${(err as Error).message} in ${JSON.stringify(raw)}`);
    }
  };
  const fail = () => {
    throw new NamedError(ERROR.permanent, s.message);
  };
  const handle = (step: StepName, fn: (raw: unknown) => unknown) => async (raw: unknown) => {
    check(step, raw);
    return fn(raw);
  };
  return {
    'lock-check': handle('lock-check', () => ({
      ...s.lock,
      vms: s.lock.vms.map((v, i) => ({ ...v, vmUuid: `vm-${i % Math.max(s.vms.length, 1)}` })),
    })),
    'snapshot-previous': handle('snapshot-previous', (raw) => {
      const i = vmIndex(raw);
      const vm = s.vms[i];
      if (!vm || vm.outcome === 'snapshot fails') fail();
      const { failure: _f, stepFailure: _s, ...out } = vm!.snapshot;
      return { ...out, vmUuid: `vm-${i}` };
    }),
    'stream-delta': handle('stream-delta', (raw) => {
      const i = vmIndex(raw);
      const vm = s.vms[i]!;
      const call = streamCalls.get(i) ?? 0;
      streamCalls.set(i, call + 1);
      if (vm.outcome === 'stream fails' && call >= vm.loops) fail();
      // failure and stepFailure are the state machine's (its Catches set them), never a step's output.
      const { failure: _f, stepFailure: _s, ...out } = vm.streams[call % 3]!;
      return { ...out, vmUuid: `vm-${i}`, done: call >= vm.loops };
    }),
    'commit-or-rollback': handle('commit-or-rollback', (raw) => {
      const vm = s.vms[vmIndex(raw)]!;
      if (vm.outcome === 'commit throws') fail();
      return vm.commit;
    }),
    'finish-run': handle('finish-run', () => s.finish),
  };
}

describe('workflow payloads round-trip through the synthesized state machine', () => {
  it('every step output reaches the next step parser unchanged, over every transition', async () => {
    const job = workflowTestConfig.jobs[0]!;
    const definition = (await loadDefinition(workflowTestConfig, job)) as {
      StartAt: string;
      States: Record<string, State>;
    };
    const defined = definedTransitions(definition);
    const covered = new Set<string>();
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const problems: string[] = [];
        const events: StateEvent[] = [];
        const result = await runExecution({
          definition,
          input: s.input,
          executionName: 'xcr-roundtrip',
          handlers: generatedHandlers(s, problems),
          retryIntervalMs: 0,
          onStateEvent: (e) => events.push(e),
        });
        for (const t of takenTransitions(events, definition)) covered.add(t);
        expect(problems).toEqual([]);
        expect(result.status).toBe('SUCCEEDED');
        // The execution's output is finish-run's result, which the run store and the CLI read back.
        expect(STEP_PAYLOADS['finish-run'].output.parse(result.output)).toEqual(s.finish);
      }),
      { numRuns: 120 },
    );
    // A transition nobody exercised (a new state, a new Catch) fails here, naming it.
    expect([...defined].filter((t) => !covered.has(t))).toEqual([]);
    expect([...covered].filter((t) => !defined.has(t))).toEqual([]);
    // The task states are exactly the steps that have payload schemas.
    const tasks = (states: Record<string, State>): string[] =>
      Object.entries(states).flatMap(([name, st]) => [
        ...(st.Type === 'Task' ? [name] : []),
        ...(st.ItemProcessor ? tasks(st.ItemProcessor.States) : []),
      ]);
    expect(tasks(definition.States).sort()).toEqual([...STEP_NAMES].sort());
  }, 60_000);
});
