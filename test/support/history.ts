import {
  type ExecutionRef,
  runExecution,
  type StateEvent,
  type WorkflowDefinitions,
} from '../../cli/local-runner.js';
import type { RunSummary } from '../../functions/replication/contract.js';
import { type FakeOptions, fakeHandlers } from './workflow-fakes.js';

/**
 * Events a Standard workflow writes to an execution's history, per thing that happens (as the
 * Step Functions console lists them):
 * - the execution: ExecutionStarted, ExecutionSucceeded|Failed;
 * - a Lambda Task: TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded|Failed|TimedOut, TaskStateExited;
 * - a startExecution.sync Task: the same plus TaskSubmitted;
 * - a retry of a Task: TaskScheduled, TaskStarted, TaskFailed again;
 * - Pass, Choice, Succeed: …StateEntered, …StateExited;
 * - a Map: MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited, and per iteration
 *   MapIterationStarted, MapIterationSucceeded (the iteration's states write their own).
 * The 25,000-event cap counts all of them.
 */
export const AWS_HISTORY_EVENTS = {
  execution: 2,
  lambdaTask: 5,
  syncTask: 6,
  taskRetry: 3,
  otherState: 2,
  map: 4,
  mapIteration: 2,
} as const;

type State = { Type: string; Resource?: string; ItemProcessor?: Def; States?: Record<string, State> };
type Def = { States?: Record<string, State> };

function syncTaskNames(def: Def, out = new Set<string>()): Set<string> {
  for (const [name, st] of Object.entries(def.States ?? {})) {
    if (st.Type === 'Task' && /:states:::states:startExecution\.sync/.test(st.Resource ?? '')) out.add(name);
    if (st.ItemProcessor) syncTaskNames(st.ItemProcessor, out);
  }
  return out;
}

export interface ExecutionFigures {
  /** Executions seen (the root and every child). */
  executions: number;
  /** The largest history of a single execution, in AWS events. */
  maxHistory: number;
  maxHistoryExecution: string;
  /** The largest state input or output (bytes of JSON) over every execution. */
  maxPayload: number;
  maxPayloadAt: string;
}

/**
 * Measures a local run of the synthesized definitions: each execution's history as AWS would
 * write it (counted from the runner's event log with the per-state counts above) and the largest
 * state input/output over the root and every child execution.
 */
export function executionMeter(defs: WorkflowDefinitions) {
  const sync = new Set<string>();
  for (const def of [defs.main, ...Object.values(defs.children)]) syncTaskNames(def as Def, sync);
  const history = new Map<string, number>();
  let maxPayload = 0;
  let maxPayloadAt = '';
  const payload = (value: unknown, at: string) => {
    if (value === undefined) return;
    const n = Buffer.byteLength(JSON.stringify(value));
    if (n > maxPayload) {
      maxPayload = n;
      maxPayloadAt = at;
    }
  };
  const onStateEvent = (e: StateEvent, x: ExecutionRef) => {
    const add = (n: number) => history.set(x.name, (history.get(x.name) ?? 0) + n);
    const E = AWS_HISTORY_EVENTS;
    switch (e.type) {
      case 'ExecutionStarted':
        add(E.execution / 2);
        payload(e.input, `${x.stateMachineArn ? 'child' : 'run'} execution input`);
        return;
      case 'ExecutionSucceeded':
        add(E.execution / 2);
        payload(e.output, `${x.stateMachineArn ? 'child' : 'run'} execution output`);
        return;
      case 'ExecutionFailed':
        add(E.execution / 2);
        return;
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed':
        add(E.mapIteration / 2);
        return;
      case 'StateRetried':
        add(E.taskRetry);
        return;
      case 'StateEntered':
        if (e.state.type === 'Task') add(sync.has(e.state.name) ? E.syncTask : E.lambdaTask);
        else if (e.state.type === 'Map') add(E.map);
        else add(E.otherState);
        payload(e.state.input, `${e.state.name} input`);
        return;
      case 'StateExited':
        payload(e.state.output, `${e.state.name} output`);
        return;
      default:
        return;
    }
  };
  const figures = (): ExecutionFigures => {
    let maxHistory = 0;
    let maxHistoryExecution = '';
    for (const [name, n] of history) {
      if (n > maxHistory) {
        maxHistory = n;
        maxHistoryExecution = name;
      }
    }
    return { executions: history.size, maxHistory, maxHistoryExecution, maxPayload, maxPayloadAt };
  };
  return { onStateEvent, figures, history };
}

/**
 * One run of the synthesized definitions with fake steps (test/support/workflow-fakes.ts), measured:
 * history per execution and the largest payload, over the run and every child execution.
 */
export async function measureRun(
  defs: WorkflowDefinitions,
  jobId: string,
  fake: FakeOptions,
): Promise<ExecutionFigures & { ms: number; summary: RunSummary; counts: Map<string, number> }> {
  const f = fakeHandlers(fake);
  const meter = executionMeter(defs);
  const t0 = performance.now();
  const r = await runExecution({
    definition: defs.main,
    children: defs.children,
    input: { jobId, scheduledTime: '2026-11-26T18:00:00Z' },
    executionName: `measure-${jobId}`,
    handlers: f.handlers,
    retryIntervalMs: 0,
    onStateEvent: meter.onStateEvent,
  });
  if (r.status !== 'SUCCEEDED') throw new Error(`measured execution ${r.status}: ${JSON.stringify(r.error)}`);
  return {
    ...meter.figures(),
    ms: performance.now() - t0,
    summary: r.output as RunSummary,
    counts: f.counts,
  };
}
