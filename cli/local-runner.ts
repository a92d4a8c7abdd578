import './promise-polyfill.js';
import { ExecutionError, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import type { StepName } from '../functions/replication/contract.js';

type Execution = ReturnType<StateMachine['run']>;
/** One event of the local execution (state entered/exited/failed/retried/caught, Map iterations, …). */
export type StateEvent = Execution['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

/** In-process handlers keyed by task state name (the replication steps, the drill steps, …). */
export type StepHandlers = Readonly<Record<string, (input: unknown) => Promise<unknown>>>;
/** The replication workflow's handlers. */
export type RunStepHandlers = Readonly<Record<StepName, (input: unknown) => Promise<unknown>>>;

export interface RunExecutionOptions {
  /** A definition from `loadDefinition` (the JSON CDK synthesizes). */
  definition: Record<string, unknown>;
  /** Execution input: `{ jobId, scheduledTime }`. */
  input: unknown;
  /** The execution name, which the workflow passes to lock-check as the run id (`$$.Execution.Name`). */
  executionName: string;
  /** In-process step handlers, called by the task states of the same name. */
  handlers: StepHandlers;
  onStateEvent?: (event: StateEvent) => void;
  /**
   * Wait before each retry, in ms, instead of the definition's intervals (tests use 0).
   * @default - the definition's IntervalSeconds/BackoffRate
   */
  retryIntervalMs?: number;
  /** The definition has passed `validateDefinition` (every one `loadDefinition` returns has): skip it. */
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
export function validateDefinition(definition: Record<string, unknown>): void {
  new StateMachine(structuredClone(definition) as unknown as StateMachineDefinition, {
    validationOptions: VALIDATION,
  });
}

/** Building a StateMachine validates the definition (about half a second); one per definition object. */
const machines = new WeakMap<object, StateMachine>();
function machineFor(definition: Record<string, unknown>, validated: boolean): StateMachine {
  let machine = machines.get(definition);
  if (!machine) {
    machine = new StateMachine(definition as unknown as StateMachineDefinition, {
      validationOptions: validated ? { noValidate: true } : VALIDATION,
    });
    machines.set(definition, machine);
  }
  return machine;
}

/**
 * Runs one execution of a synthesized definition with aws-local-stepfunctions: each task state
 * calls the in-process handler of its name; Retry, Catch, Choice and Map behave as on AWS.
 */
export async function runExecution(o: RunExecutionOptions): Promise<ExecutionResult> {
  const machine = machineFor(o.definition, o.validated ?? false);
  type LocalHandler = (input: unknown) => Promise<unknown>;
  const taskResourceLocalHandlers: Record<string, LocalHandler> = {};
  for (const [step, handler] of Object.entries(o.handlers)) {
    taskResourceLocalHandlers[step] = async (input) => jsonRoundTrip(await handler(jsonRoundTrip(input)));
  }
  const retryIntervalOverrides =
    o.retryIntervalMs === undefined
      ? undefined
      : Object.fromEntries(Object.keys(o.handlers).map((s) => [s, o.retryIntervalMs as number]));
  const execution = machine.run(jsonRoundTrip(o.input) as never, {
    overrides: {
      taskResourceLocalHandlers: taskResourceLocalHandlers as never,
      ...(retryIntervalOverrides ? { retryIntervalOverrides } : {}),
      ...(o.waitMs ? { waitTimeOverrides: { ...o.waitMs } } : {}),
    },
    context: { Execution: { Name: o.executionName, Id: `local:${o.executionName}` } },
  });
  const drained = (async () => {
    for await (const event of execution.eventLogs) o.onStateEvent?.(event);
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
