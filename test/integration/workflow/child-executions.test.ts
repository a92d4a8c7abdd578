/**
 * The local runner's startExecution tasks, on small hand-written definitions: a child runs through
 * the same runner and answers as Step Functions' `.sync:2` does; a name already used is not
 * started again.
 */
import { describe, expect, it } from 'vitest';
import { type ExecutionRef, runExecution } from '../../../cli/local-runner.js';

const CHILD = 'arn:aws:states:us-east-1:123456789012:stateMachine:Child';
const child = {
  StartAt: 'work',
  States: {
    work: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:123456789012:function:work', End: true },
  },
};
const start = (name: string | undefined, next: Record<string, unknown>) => ({
  Type: 'Task',
  Resource: 'arn:aws:states:::states:startExecution.sync:2',
  Parameters: { StateMachineArn: CHILD, ...(name ? { Name: name } : {}), 'Input.$': '$.input' },
  ResultSelector: { 'out.$': '$.Output', 'status.$': '$.Status' },
  ResultPath: '$.child',
  ...next,
});

describe('child executions in the local runner', () => {
  it('runs the child with its input and returns its Output as JSON; events name the execution', async () => {
    const seen: ExecutionRef[] = [];
    const r = await runExecution({
      definition: { StartAt: 'start', States: { start: start('kid-1', { End: true }) } },
      children: { [CHILD]: child },
      input: { input: { n: 41 } },
      executionName: 'parent',
      handlers: { work: async (i) => ({ n: (i as { n: number }).n + 1 }) },
      onStateEvent: (_e, x) => seen.push(x),
    });
    expect(r).toEqual({
      status: 'SUCCEEDED',
      output: { input: { n: 41 }, child: { out: { n: 42 }, status: 'SUCCEEDED' } },
    });
    expect(seen.some((x) => x.name === 'kid-1' && x.stateMachineArn === CHILD && x.parent === 'parent')).toBe(
      true,
    );
  });

  it('a failed child fails the task with States.TaskFailed, its error and cause in the Cause', async () => {
    const r = await runExecution({
      definition: {
        StartAt: 'start',
        States: {
          start: start('kid-2', {
            Catch: [{ ErrorEquals: ['States.TaskFailed'], ResultPath: '$.error', Next: 'done' }],
            Next: 'done',
          }),
          done: { Type: 'Pass', End: true },
        },
      },
      children: { [CHILD]: child },
      input: { input: {} },
      executionName: 'parent-2',
      handlers: {
        work: async () => {
          throw Object.assign(new Error('disk gone'), { name: 'XcrPermanentError' });
        },
      },
    });
    const error = (r.output as { error: { Error: string; Cause: string } }).error;
    expect(error.Error).toBe('States.TaskFailed');
    expect(JSON.parse(error.Cause)).toMatchObject({
      Status: 'FAILED',
      Error: 'XcrPermanentError',
      Cause: 'disk gone',
    });
  });

  it('a name already used is ExecutionAlreadyExists once that execution has ended', async () => {
    let runs = 0;
    const r = await runExecution({
      definition: {
        StartAt: 'first',
        States: {
          first: start('same', { Next: 'again' }),
          again: start('same', {
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'done' }],
            Next: 'done',
          }),
          done: { Type: 'Pass', End: true },
        },
      },
      children: { [CHILD]: child },
      input: { input: {} },
      executionName: 'parent-3',
      handlers: {
        work: async () => {
          runs++;
          return {};
        },
      },
    });
    expect(runs).toBe(1);
    expect((r.output as { error: { Error: string } }).error.Error).toBe(
      'StepFunctions.ExecutionAlreadyExistsException',
    );
  });

  it('names a missing child definition', async () => {
    const r = await runExecution({
      definition: { StartAt: 'start', States: { start: start(undefined, { End: true }) } },
      input: { input: {} },
      executionName: 'parent-4',
      handlers: {},
    });
    expect(r.error).toMatchObject({
      Error: 'StepFunctions.StateMachineDoesNotExistException',
      Cause: `no local definition for ${CHILD}`,
    });
  });
});
