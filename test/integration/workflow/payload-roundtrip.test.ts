import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDefinition } from '../../../cli/definition-cache.js';
import {
  type ExecutionRef,
  runExecution,
  type StateEvent,
  type StepHandlers,
  type WorkflowDefinitions,
} from '../../../cli/local-runner.js';
import {
  BATCH_SIZE,
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

type Def = { StartAt: string; States: Record<string, State> };
const allOf = (defs: WorkflowDefinitions) => [defs.main, ...Object.values(defs.children)] as unknown as Def[];

/** Every transition of the definitions (the run and its children), as "<from> -> <to> (<how>)". */
function definedTransitions(defs: WorkflowDefinitions): Set<string> {
  const edges = new Set<string>();
  for (const def of allOf(defs)) addTransitions(def, edges);
  return edges;
}

function addTransitions(def: Def, edges: Set<string>): void {
  edges.add(`(start) -> ${def.StartAt} (start)`);
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
}

/** The transitions the executions took, from their event logs (one scope per execution and Map iteration). */
function takenTransitions(events: [StateEvent, ExecutionRef][], defs: WorkflowDefinitions): string[] {
  const choiceDefault = new Map<string, string>();
  const catchNext = new Map<string, string>();
  const collect = (states: Record<string, State>) => {
    for (const [name, s] of Object.entries(states)) {
      if (s.Default) choiceDefault.set(name, s.Default);
      // every Catch of these machines is one States.ALL clause
      if (s.Catch?.[0]) catchNext.set(name, s.Catch[0].Next);
      if (s.ItemProcessor) collect(s.ItemProcessor.States);
    }
  };
  for (const def of allOf(defs)) collect(def.States);
  const scopes = new Map<string, { last: string; caught?: string }>();
  const taken: string[] = [];
  const maps = new Map<string, string>();
  for (const [e, x] of events) {
    if (e.type === 'MapIterationStarted') maps.set(x.name, e.parentState.name);
    if (e.type !== 'StateEntered' && e.type !== 'StateCaught') continue;
    const map = maps.get(x.name) ?? '';
    const top = e.index === undefined;
    const key = `${x.name}/${top ? 'top' : `item-${e.index}`}`;
    const scope = scopes.get(key);
    const name = e.state.name;
    if (e.type === 'StateCaught') {
      // Counted from the catch itself: aws-local-stepfunctions does not always log the StateEntered
      // of a terminal Pass that ends a Map iteration (record-failure → result-lost).
      const next = catchNext.get(name);
      if (next) {
        taken.push(`${name} -> ${next} (catch)`);
        scopes.set(key, { last: name, caught: next });
      }
      continue;
    }
    if (!scope) taken.push(top ? `(start) -> ${name} (start)` : `${map} -> ${name} (items)`);
    else if (scope.caught !== name) {
      const how = choiceDefault.has(scope.last)
        ? choiceDefault.get(scope.last) === name
          ? 'default'
          : 'choice'
        : 'next';
      taken.push(`${scope.last} -> ${name} (${how})`);
    }
    scopes.set(key, { last: name });
  }
  return taken;
}

const outputs = <S extends StepName>(step: S) =>
  arbitraryOf(STEP_PAYLOADS[step].output) as fc.Arbitrary<StepOutput<S>>;
const perVm = fc.record({
  // 'transfer fails': stream-delta returns no state at all, so the transfer execution fails in
  // transfer-more? (States.Runtime) and the batch's Catch on transfer-disks takes the VM.
  outcome: fc.constantFrom('committed', 'snapshot fails', 'stream fails', 'transfer fails', 'commit throws'),
  loops: fc.integer({ min: 0, max: 2 }),
  snapshot: outputs('snapshot-previous'),
  streams: fc.array(outputs('stream-delta'), { minLength: 3, maxLength: 3 }),
  commit: outputs('commit-or-rollback'),
});
const scenario = fc.record({
  input: arbitraryOf(runInput),
  lock: outputs('lock-check'),
  vms: fc.array(perVm, { maxLength: 3 }),
  batch: outputs('load-batch'),
  /** The first of two batches fails as a whole (its load-batch), the second runs the VMs. */
  batchFails: fc.boolean(),
  /** record-failure fails too (after commit and rollback did): the VM's result is lost. */
  recordFails: fc.boolean(),
  recorded: outputs('record-failure'),
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
      vmCount: s.vms.length,
      batchSize: BATCH_SIZE,
      batch: { index: 0, count: s.batchFails ? 2 : 1 },
    })),
    'load-batch': handle('load-batch', (raw) => {
      if (s.batchFails && (raw as { batchIndex: number }).batchIndex === 0) fail();
      return { ...s.batch, vms: s.vms.map((_, i) => `vm-${i}`) };
    }),
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
      if (vm.outcome === 'transfer fails' && call >= vm.loops) return null;
      // failure and stepFailure are the state machine's (its Catches set them), never a step's output.
      const { failure: _f, stepFailure: _s, ...out } = vm.streams[call % 3]!;
      return { ...out, vmUuid: `vm-${i}`, done: call >= vm.loops };
    }),
    'commit-or-rollback': handle('commit-or-rollback', (raw) => {
      const vm = s.vms[vmIndex(raw)]!;
      if (vm.outcome === 'commit throws') fail();
      return vm.commit;
    }),
    'record-failure': handle('record-failure', () => {
      if (s.recordFails) fail();
      return s.recorded;
    }),
    'finish-run': handle('finish-run', () => s.finish),
  };
}

describe('workflow payloads round-trip through the synthesized state machine', () => {
  it('every step output reaches the next step parser unchanged, over every transition', async () => {
    const job = workflowTestConfig.jobs[0]!;
    const definitions = await loadDefinition(workflowTestConfig, job);
    const defined = definedTransitions(definitions);
    const covered = new Set<string>();
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const problems: string[] = [];
        const events: [StateEvent, ExecutionRef][] = [];
        const result = await runExecution({
          definition: definitions.main,
          children: definitions.children,
          input: s.input,
          executionName: 'xcr-roundtrip',
          handlers: generatedHandlers(s, problems),
          retryIntervalMs: 0,
          onStateEvent: (e, x) => events.push([e, x]),
        });
        for (const t of takenTransitions(events, definitions)) covered.add(t);
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
    // The task states are the steps that have payload schemas and the two child executions.
    const tasks = (states: Record<string, State>): string[] =>
      Object.entries(states).flatMap(([name, st]) => [
        ...(st.Type === 'Task' ? [name] : []),
        ...(st.ItemProcessor ? tasks(st.ItemProcessor.States) : []),
      ]);
    expect(
      allOf(definitions)
        .flatMap((d) => tasks(d.States))
        .sort(),
    ).toEqual([...STEP_NAMES, 'run-batch', 'transfer-disks'].sort());
  }, 60_000);
});
