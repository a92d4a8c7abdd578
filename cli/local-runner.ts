import './promise-polyfill.js';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ExecutionError, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import type { StepName } from '../functions/replication/contract.js';

type Execution = ReturnType<StateMachine['run']>;
/** One event of the local execution (state entered/exited/failed/retried/caught, Map iterations, …). */
export type StateEvent = Execution['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

export type StateHandler = (input: unknown) => Promise<unknown>;
/** In-process handlers of Task states, keyed by state name. */
export type StateHandlers = Readonly<Record<string, StateHandler>>;
/** The replication workflow's Lambda steps. */
export type StepHandlers = Readonly<Record<StepName, StateHandler>>;

type Definition = Record<string, unknown>;

/** A state machine and the child state machines its (and their) startExecution tasks start. */
export interface WorkflowDefinitions {
  /** The state machine an execution starts in (the run, for replication). */
  main: Definition;
  /** Child state machines by ARN, as the definitions' `StateMachineArn` parameters name them. */
  children: Readonly<Record<string, Definition>>;
}

/** Which execution an event belongs to (the root, or a child started by a startExecution task). */
export interface ExecutionRef {
  name: string;
  /** The child's state machine ARN; undefined for the root execution. */
  stateMachineArn?: string;
  /** The name of the execution that started it. */
  parent?: string;
}

export interface RunExecutionOptions {
  /** A definition from `loadDefinition` (the JSON CDK synthesizes). */
  definition: Definition;
  /** Child state machines by ARN, run through this same runner by `states:startExecution` tasks. */
  children?: Readonly<Record<string, Definition>>;
  /** Execution input: `{ jobId, scheduledTime }`. */
  input: unknown;
  /** The execution name, which the workflow passes to lock-check as the run id (`$$.Execution.Name`). */
  executionName: string;
  /** In-process handlers, called by the task states of the same name (in the children too). */
  handlers: StateHandlers;
  /** Every event of the execution and of its child executions, with the execution it belongs to. */
  onStateEvent?: (event: StateEvent, execution: ExecutionRef) => void;
  /**
   * Wait before each retry, in ms, instead of the definition's intervals (tests use 0).
   * @default - the definition's IntervalSeconds/BackoffRate
   */
  retryIntervalMs?: number;
  /** The definitions have passed `validateDefinition` (every one `loadDefinition` returns has): skip it. */
  validated?: boolean;
  /**
   * Duration of Wait states, in ms, by state name, instead of the definition's (tests and the
   * demo shorten the drill's check-wait).
   */
  waitMs?: Readonly<Record<string, number>>;
}

export interface ExecutionResult {
  status: 'SUCCEEDED' | 'FAILED';
  output?: unknown;
  error?: { Error: string; Cause: string };
}

/** A handler's result crosses a JSON boundary on AWS: do the same locally (Dates, undefined, …). */
function jsonRoundTrip(value: unknown): unknown {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

const VALIDATION = { checkArn: true, checkPaths: true } as const;

/**
 * Throws unless the local runner accepts the definition (the checks building a StateMachine makes),
 * on a copy: the validator writes default QueryLanguage fields into the states it checks.
 */
export function validateDefinition(definition: Definition): void {
  new StateMachine(structuredClone(definition) as unknown as StateMachineDefinition, {
    validationOptions: VALIDATION,
  });
}

/** Building a StateMachine validates the definition (about half a second); one per definition object. */
const machines = new WeakMap<object, StateMachine>();
function machineFor(definition: Definition, validated: boolean): StateMachine {
  let machine = machines.get(definition);
  if (!machine) {
    machine = new StateMachine(definition as unknown as StateMachineDefinition, {
      validationOptions: validated ? { noValidate: true } : VALIDATION,
    });
    machines.set(definition, machine);
  }
  return machine;
}

interface TaskState {
  Type: 'Task';
  Resource?: string;
}

/** Every Task state of a definition by name, nested Map and Parallel states included. */
function taskStates(definition: Definition, out = new Map<string, TaskState>()): Map<string, TaskState> {
  for (const [name, state] of Object.entries((definition.States ?? {}) as Record<string, Definition>)) {
    if (state.Type === 'Task') out.set(name, state as unknown as TaskState);
    for (const nested of [state.ItemProcessor, state.Iterator, ...((state.Branches as unknown[]) ?? [])]) {
      if (nested && typeof nested === 'object') taskStates(nested as Definition, out);
    }
  }
  return out;
}

const START_EXECUTION = /^arn:aws:states:::states:startExecution(\.sync(:2)?)?$/;

class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Child executions of one root execution by state machine and name (names are unique per machine). */
type Started = Map<string, { input: unknown; result: Promise<ExecutionResult>; done: boolean }>;

/**
 * The local form of a startExecution task: runs the child definition through this runner and
 * answers as Step Functions does. `.sync:2` returns the DescribeExecution fields with `Output` as
 * JSON and fails with States.TaskFailed when the child fails; plain startExecution returns at once.
 * A name already used starts nothing: while that execution runs with the same input its result is
 * awaited (the StartExecution idempotency of Standard workflows), otherwise it is
 * ExecutionAlreadyExists.
 */
function startExecutionHandler(
  o: RunExecutionOptions,
  resource: string,
  started: Started,
  parent: string,
): StateHandler {
  const sync = resource.includes('.sync');
  return async (raw) => {
    const params = raw as { StateMachineArn?: string; Name?: string; Input?: unknown };
    const arn = params.StateMachineArn ?? '';
    const definition = o.children?.[arn];
    if (!definition)
      throw new NamedError(
        'StepFunctions.StateMachineDoesNotExistException',
        `no local definition for ${arn}`,
      );
    const name = params.Name ?? randomUUID();
    const key = `${arn}\n${name}`;
    let run = started.get(key);
    if (run && (run.done || !isDeepStrictEqual(run.input, params.Input))) {
      throw new NamedError(
        'StepFunctions.ExecutionAlreadyExistsException',
        `Execution Already Exists: '${arn}:${name}'`,
      );
    }
    const executionArn = `${arn.replace(':stateMachine:', ':execution:')}:${name}`;
    const startDate = Date.now();
    if (!run) {
      const entry = { input: params.Input, done: false, result: Promise.resolve({} as ExecutionResult) };
      entry.result = execute(
        { ...o, definition, input: params.Input ?? {}, executionName: name },
        { name, stateMachineArn: arn, parent },
        started,
      ).finally(() => {
        entry.done = true;
      });
      started.set(key, entry);
      run = entry;
    }
    if (!sync) return { ExecutionArn: executionArn, StartDate: startDate };
    const result = await run.result;
    const described = {
      ExecutionArn: executionArn,
      Name: name,
      StateMachineArn: arn,
      StartDate: startDate,
      StopDate: Date.now(),
    };
    if (result.status !== 'SUCCEEDED') {
      throw new NamedError(
        'States.TaskFailed',
        JSON.stringify({
          ...described,
          Status: 'FAILED',
          Error: result.error?.Error,
          Cause: result.error?.Cause,
        }),
      );
    }
    return { ...described, Status: 'SUCCEEDED', Output: result.output };
  };
}

async function execute(
  o: RunExecutionOptions,
  self: ExecutionRef,
  started: Started,
): Promise<ExecutionResult> {
  const machine = machineFor(o.definition, o.validated ?? false);
  const taskResourceLocalHandlers: Record<string, StateHandler> = {};
  const retryIntervalOverrides: Record<string, number> = {};
  for (const [name, state] of taskStates(o.definition)) {
    const handler =
      o.handlers[name] ??
      (state.Resource && START_EXECUTION.test(state.Resource)
        ? startExecutionHandler(o, state.Resource, started, self.name)
        : undefined);
    if (!handler)
      throw new Error(`no local handler for the task state "${name}" (${state.Resource ?? 'no resource'})`);
    taskResourceLocalHandlers[name] = async (input) => jsonRoundTrip(await handler(jsonRoundTrip(input)));
    if (o.retryIntervalMs !== undefined) retryIntervalOverrides[name] = o.retryIntervalMs;
  }
  const execution = machine.run(jsonRoundTrip(o.input) as never, {
    overrides: {
      taskResourceLocalHandlers: taskResourceLocalHandlers as never,
      ...(o.retryIntervalMs !== undefined ? { retryIntervalOverrides } : {}),
      ...(o.waitMs ? { waitTimeOverrides: { ...o.waitMs } } : {}),
    },
    context: { Execution: { Name: self.name, Id: `local:${self.name}` } },
  });
  const drained = (async () => {
    for await (const event of execution.eventLogs) o.onStateEvent?.(event, self);
  })();
  try {
    const output = await execution.result;
    return { status: 'SUCCEEDED', output };
  } catch (err) {
    if (!(err instanceof ExecutionError)) throw err;
    const cause = (err as Error & { cause?: unknown }).cause;
    const name = cause instanceof Error ? cause.name : 'States.Runtime';
    const message = cause instanceof Error ? cause.message : String(cause);
    return { status: 'FAILED', error: { Error: name, Cause: message } };
  } finally {
    await drained.catch(() => undefined);
  }
}

/**
 * Runs one execution of a synthesized definition with aws-local-stepfunctions: each task state
 * calls the in-process handler of its name; Retry, Catch, Choice and Map behave as on AWS; a
 * `states:startExecution` task without a handler runs its child definition through this runner.
 */
export function runExecution(o: RunExecutionOptions): Promise<ExecutionResult> {
  return execute(o, { name: o.executionName }, new Map());
}
