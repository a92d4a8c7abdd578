import { beforeAll, describe, expect, it } from 'vitest';
import { runExecution, type StateEvent } from '../../../cli/local-runner.js';
import { synthesizeDefinitions } from '../../../cli/workflow-definitions.js';
import type { FinishRunInput, RunResult, VmRunState } from '../../../functions/replication/contract.js';
import { type FakeOptions, fakeHandlers, fakeUuid, NamedError } from '../../support/workflow-fakes.js';
import { workflowTestConfig } from './config.js';

let definitions: Map<string, Record<string, unknown>>;

beforeAll(() => {
  definitions = synthesizeDefinitions(workflowTestConfig);
}, 180_000);

async function run(fake: FakeOptions, jobId = 'web', executionName = 'xcr-web-run-1') {
  const f = fakeHandlers(fake);
  const events: StateEvent[] = [];
  const result = await runExecution({
    definition: definitions.get(jobId)!,
    input: { jobId, scheduledTime: '2026-11-26T18:00:00Z' },
    executionName,
    handlers: f.handlers,
    retryIntervalMs: 0,
    onStateEvent: (e) => events.push(e),
  });
  const inputsOf = (step: string) => f.calls.filter((c) => c.step === step).map((c) => c.input);
  return { ...f, result, events, inputsOf };
}

describe('local runner on the synthesized definition', () => {
  it('synthesizes one definition per job, with the job concurrency on the Map', () => {
    expect([...definitions.keys()].sort()).toEqual(['web', 'wide']);
    const map = (d: Record<string, unknown>) =>
      (d.States as Record<string, { MaxConcurrency?: number }>)['replicate-vms']!.MaxConcurrency;
    expect(map(definitions.get('web')!)).toBe(3);
    expect(map(definitions.get('wide')!)).toBe(40);
  });

  it('happy path: every VM snapshotted, each disk streamed, committed, then finish-run', async () => {
    const r = await run({ vmCount: 3, disksPerVm: 2 });
    expect(r.result.status).toBe('SUCCEEDED');
    const out = r.result.output as RunResult;
    expect(out.status).toBe('succeeded');
    expect(out.vms.map((v) => v.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(out.bytes).toBe(3 * 2 * 3_221_225_472);
    expect(r.counts.get('lock-check')).toBe(1);
    expect(r.counts.get('snapshot-previous')).toBe(3);
    expect(r.counts.get('stream-delta')).toBe(6);
    expect(r.counts.get('commit-or-rollback')).toBe(3);
    expect(r.counts.get('finish-run')).toBe(1);
    // The run id is the execution name ($$.Execution.Name), the scheduled time comes from the input.
    expect(r.inputsOf('lock-check')[0]).toEqual({
      jobId: 'web',
      scheduledTime: '2026-11-26T18:00:00Z',
      runId: 'xcr-web-run-1',
    });
    const finish = r.inputsOf('finish-run')[0] as FinishRunInput;
    expect(finish.results).toHaveLength(3);
    expect(finish.mapFailure).toBeUndefined();
  });

  it('skipped: lock-check says skipped, nothing is replicated, finish-run reports the skip', async () => {
    const r = await run({ skipped: true });
    expect(r.result.status).toBe('SUCCEEDED');
    expect((r.result.output as RunResult).status).toBe('skipped');
    expect(r.calls.map((c) => c.step)).toEqual(['lock-check', 'finish-run']);
    expect(r.events.some((e) => 'state' in e && e.state.name === 'replicate-vms')).toBe(false);
  });

  it('a failure in snapshot-previous sends that VM to commit-or-rollback with the failure', async () => {
    const bad = fakeUuid(1);
    const r = await run({
      vmCount: 3,
      inject: (step, input) => {
        if (step === 'snapshot-previous' && (input as { vmUuid: string }).vmUuid === bad) {
          throw new NamedError('XcrPermanentError', 'VM_BAD_POWER_STATE: halted');
        }
      },
    });
    expect(r.result.status).toBe('SUCCEEDED');
    const commits = r.inputsOf('commit-or-rollback') as VmRunState[];
    const failed = commits.find((c) => c.vmUuid === bad)!;
    expect(failed.failure?.Error).toBe('XcrPermanentError');
    expect(failed.failure?.Cause).toContain('VM_BAD_POWER_STATE');
    // Permanent errors are not retried; the failed VM never streamed.
    expect(r.counts.get('snapshot-previous')).toBe(3);
    expect((r.inputsOf('stream-delta') as VmRunState[]).some((s) => s.vmUuid === bad)).toBe(false);
    const out = r.result.output as RunResult;
    expect(out.status).toBe('partial');
    expect(out.vms.find((v) => v.vmUuid === bad)?.status).toBe('failed');
  });

  it('a failure in stream-delta reaches commit-or-rollback with the failure and the disk state', async () => {
    const r = await run({
      vmCount: 1,
      disksPerVm: 3,
      inject: (step, _input, call) => {
        if (step === 'stream-delta' && call === 2) throw new NamedError('ConfigError', 'jobId: unknown job');
      },
    });
    expect(r.result.status).toBe('SUCCEEDED');
    const [commit] = r.inputsOf('commit-or-rollback') as VmRunState[];
    expect(commit?.failure?.Error).toBe('ConfigError');
    // The state that entered the failing invocation: first disk done, the rest pending.
    expect(commit?.disks.map((d) => d.done)).toEqual([true, false, false]);
    expect(r.counts.get('stream-delta')).toBe(2);
    expect((r.result.output as RunResult).status).toBe('failed');
  });

  it('retries XcrTransientError (3 attempts) and then catches it', async () => {
    const once = await run({
      vmCount: 1,
      disksPerVm: 1,
      inject: (step, _i, call) => {
        if (step === 'stream-delta' && call === 1) throw new NamedError('XcrTransientError', 'VDI_IN_USE');
      },
    });
    expect((once.result.output as RunResult).status).toBe('succeeded');
    expect(once.counts.get('stream-delta')).toBe(2);
    expect(once.events.filter((e) => e.type === 'StateRetried')).toHaveLength(1);

    const always = await run({
      vmCount: 1,
      disksPerVm: 1,
      inject: (step) => {
        if (step === 'snapshot-previous') throw new NamedError('XcrTransientError', 'TOO_MANY_PENDING_TASKS');
      },
    });
    expect(always.counts.get('snapshot-previous')).toBe(4);
    const [commit] = always.inputsOf('commit-or-rollback') as VmRunState[];
    expect(commit?.failure?.Error).toBe('XcrTransientError');
    expect((always.result.output as RunResult).status).toBe('failed');
  });

  it('loops stream-delta through disks-done? once per disk', async () => {
    const r = await run({ vmCount: 2, disksPerVm: 4 });
    expect(r.counts.get('stream-delta')).toBe(8);
    const choices = r.events.filter((e) => e.type === 'StateEntered' && e.state.name === 'disks-done?');
    expect(choices).toHaveLength(8);
    expect((r.result.output as RunResult).status).toBe('succeeded');
  });

  it('a commit and then its rollback that keep failing end that VM, never the Map: each VM tried once each way', async () => {
    const r = await run({
      vmCount: 3,
      inject: (step) => {
        if (step === 'commit-or-rollback') throw new NamedError('XcrPermanentError', 'rollback failed');
      },
    });
    expect(r.result.status).toBe('SUCCEEDED');
    expect(r.counts.get('finish-run')).toBe(1);
    // The commit, then one rollback with the commit's failure, per VM.
    expect(r.counts.get('commit-or-rollback')).toBe(6);
    const rollbacks = r.inputsOf('commit-or-rollback').filter((i) => (i as VmRunState).failure);
    expect(rollbacks).toHaveLength(3);
    const finish = r.inputsOf('finish-run')[0] as FinishRunInput;
    expect(finish.mapFailure).toBeUndefined();
    expect(finish.results).toHaveLength(3);
    for (const v of finish.results!) {
      expect(v).toMatchObject({
        status: 'failed',
        failure: { Error: 'XcrPermanentError' },
        rollbackFailure: { Error: 'XcrPermanentError' },
      });
    }
    const output = r.result.output as RunResult;
    expect(output.status).toBe('failed');
    // (The real finish-run turns failure + rollbackFailure into errorCode and message: isolation.test.ts.)
  });

  it('a lock-check failure fails the execution (no lease was taken, nothing to finish)', async () => {
    const r = await run({
      inject: (step) => {
        if (step === 'lock-check') throw new NamedError('ConfigError', 'jobId: unknown job "nope"');
      },
    });
    expect(r.result.status).toBe('FAILED');
    expect(r.result.error?.Error).toBe('ConfigError');
    expect(r.counts.get('finish-run')).toBeUndefined();
  });

  it('honours the job concurrency in the Map', async () => {
    let active = 0;
    let peak = 0;
    const f = fakeHandlers({ vmCount: 10, disksPerVm: 1 });
    const snapshot = f.handlers['snapshot-previous'];
    const handlers = {
      ...f.handlers,
      'snapshot-previous': async (input: unknown) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        return snapshot(input);
      },
    };
    const result = await runExecution({
      definition: definitions.get('web')!,
      input: { jobId: 'web', scheduledTime: '2026-11-26T18:00:00Z' },
      executionName: 'concurrency',
      handlers,
      retryIntervalMs: 0,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(peak).toBe(3);
  });

  it('the Distributed Map variant runs the same way (results, failures, finish-run)', async () => {
    const distributed = synthesizeDefinitions(workflowTestConfig, { distributedMap: true }).get('web')!;
    const bad = fakeUuid(2);
    const f = fakeHandlers({
      vmCount: 4,
      inject: (step, input) => {
        if (step === 'stream-delta' && (input as { vmUuid: string }).vmUuid === bad) {
          throw new NamedError('XcrPermanentError', 'VDI_IO_ERROR');
        }
      },
    });
    const result = await runExecution({
      definition: distributed,
      input: { jobId: 'web', scheduledTime: '2026-11-26T18:00:00Z' },
      executionName: 'distributed',
      handlers: f.handlers,
      retryIntervalMs: 0,
    });
    const out = result.output as RunResult;
    expect(out.status).toBe('partial');
    expect(out.vms.filter((v) => v.status === 'failed').map((v) => v.vmUuid)).toEqual([bad]);
    expect(f.counts.get('finish-run')).toBe(1);
  }, 120_000);

  it('500 VMs: every state input and output stays far below the 256 KiB limit', async () => {
    const r = await run({ vmCount: 500, disksPerVm: 2 }, 'wide');
    expect(r.result.status).toBe('SUCCEEDED');
    let largest = 0;
    for (const e of r.events) {
      if (!('state' in e)) continue;
      for (const v of [e.state.input, e.state.output]) {
        if (v !== undefined) largest = Math.max(largest, Buffer.byteLength(JSON.stringify(v)));
      }
    }
    expect(largest).toBeGreaterThan(500 * 100);
    expect(largest).toBeLessThan(160 * 1024);
    expect((r.result.output as RunResult).vms).toHaveLength(500);
  });
});
