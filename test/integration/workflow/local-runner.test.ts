import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExecution, type StateEvent, type WorkflowDefinitions } from '../../../cli/local-runner.js';
import { synthesizeDefinitions } from '../../../cli/workflow-definitions.js';
import {
  BATCH_SIZE,
  type FinishRunInput,
  type LoadBatchInput,
  type RunSummary,
  type VmResult,
  type VmRunState,
} from '../../../functions/replication/contract.js';
import { runVmResults } from '../../../functions/replication/run-results.js';
import type { RunStore } from '../../../functions/runstore/port.js';
import { type FakeOptions, fakeHandlers, fakeUuid, NamedError } from '../../support/workflow-fakes.js';
import { workflowTestConfig } from './config.js';

let definitions: Map<string, WorkflowDefinitions>;

async function vmResults(runs: RunStore, runId: string): Promise<VmResult[]> {
  const out: VmResult[] = [];
  for await (const vm of runVmResults(runs, runId)) out.push(vm);
  return out;
}

/** The named state of one of a job's definitions (the run or a child), wherever it is nested. */
function stateOf(defs: WorkflowDefinitions, name: string): Record<string, unknown> {
  const find = (d: {
    States?: Record<string, Record<string, unknown>>;
  }): Record<string, unknown> | undefined => {
    for (const [n, st] of Object.entries(d.States ?? {})) {
      if (n === name) return st;
      const inner = st.ItemProcessor ? find(st.ItemProcessor as never) : undefined;
      if (inner) return inner;
    }
    return undefined;
  };
  for (const d of [defs.main, ...Object.values(defs.children)]) {
    const st = find(d as never);
    if (st) return st;
  }
  throw new Error(`no state ${name}`);
}

beforeAll(() => {
  definitions = synthesizeDefinitions(workflowTestConfig);
}, 180_000);

async function run(fake: FakeOptions, jobId = 'web', executionName = 'xcr-web-run-1') {
  const f = fakeHandlers(fake);
  const events: StateEvent[] = [];
  const executions = new Set<string>();
  const defs = definitions.get(jobId)!;
  const result = await runExecution({
    definition: defs.main,
    children: defs.children,
    input: { jobId, scheduledTime: '2026-11-26T18:00:00Z' },
    executionName,
    handlers: f.handlers,
    retryIntervalMs: 0,
    onStateEvent: (e, x) => {
      events.push(e);
      executions.add(x.name);
    },
  });
  const inputsOf = (step: string) => f.calls.filter((c) => c.step === step).map((c) => c.input);
  const output = result.output as RunSummary;
  const vms = await vmResults(f.runs, executionName);
  return { ...f, result, output, vms, events, executions, inputsOf };
}

describe('local runner on the synthesized definition', () => {
  it('synthesizes per job the run and its two child machines, with the job concurrency on the Map', () => {
    const runKeys = [...definitions.keys()].filter((k) => !k.includes(':'));
    expect(runKeys.sort()).toEqual(['web', 'wide']);
    expect([...definitions.keys()].filter((k) => k.includes(':')).sort()).toEqual([
      'failback:web',
      'failback:wide',
      'failover:web',
      'failover:wide',
    ]);
    for (const k of runKeys) expect(Object.keys(definitions.get(k)!.children)).toHaveLength(2);
    const map = (jobId: string) => stateOf(definitions.get(jobId)!, 'replicate-vms').MaxConcurrency;
    expect(map('web')).toBe(3);
    expect(map('wide')).toBe(40);
    // Each child is started by name of a child machine of the same job.
    const web = definitions.get('web')!;
    for (const st of ['run-batch', 'transfer-disks']) {
      const { Resource, Parameters } = stateOf(web, st) as {
        Resource: string;
        Parameters: { StateMachineArn: string };
      };
      expect(Resource).toBe('arn:aws:states:::states:startExecution.sync:2');
      expect(Object.keys(web.children)).toContain(Parameters.StateMachineArn);
    }
  });

  it('happy path: every VM snapshotted, each disk streamed, committed, then finish-run', async () => {
    const r = await run({ vmCount: 3, disksPerVm: 2 });
    expect(r.result.status).toBe('SUCCEEDED');
    expect(r.output).toMatchObject({
      status: 'succeeded',
      vmCount: 3,
      succeeded: 3,
      failed: 0,
      failures: [],
    });
    expect(r.vms.map((v) => v.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(r.vms.map((v) => v.vmUuid)).toEqual([0, 1, 2].map((i) => fakeUuid(i)));
    expect(r.output.bytes).toBe(3 * 2 * 3_221_225_472);
    expect(r.counts.get('lock-check')).toBe(1);
    expect(r.counts.get('load-batch')).toBe(1);
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
    // The states carry counters: finish-run gets no VM list, it reads the run store.
    const finish = r.inputsOf('finish-run')[0] as FinishRunInput;
    expect(finish).toEqual({
      jobId: 'web',
      runId: 'xcr-web-run-1',
      startedAt: '2026-11-26T18:00:00.000Z',
      status: 'acquired',
      vmCount: 3,
      batchSize: BATCH_SIZE,
      batch: { index: 1, count: 1 },
    });
    // The run, one batch, one transfer execution per VM.
    expect(r.executions.size).toBe(1 + 1 + 3);
  });

  it('skipped: lock-check says skipped, nothing is replicated, finish-run reports the skip', async () => {
    const r = await run({ skipped: true });
    expect(r.result.status).toBe('SUCCEEDED');
    expect(r.output.status).toBe('skipped');
    expect(r.calls.map((c) => c.step)).toEqual(['lock-check', 'finish-run']);
    expect(r.events.some((e) => 'state' in e && e.state.name === 'run-batch')).toBe(false);
    expect(r.executions.size).toBe(1);
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
    expect(r.output.status).toBe('partial');
    expect(r.vms.find((v) => v.vmUuid === bad)?.status).toBe('failed');
    expect(r.output.failures).toEqual([
      {
        vmUuid: bad,
        errorCode: 'XcrPermanentError',
        message: 'VDI_IO_ERROR: device I/O error on the source SR',
      },
    ]);
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
    expect(r.output.status).toBe('failed');
  });

  it('retries XcrTransientError (3 attempts) and then catches it', async () => {
    const once = await run({
      vmCount: 1,
      disksPerVm: 1,
      inject: (step, _i, call) => {
        if (step === 'stream-delta' && call === 1) throw new NamedError('XcrTransientError', 'VDI_IN_USE');
      },
    });
    expect(once.output.status).toBe('succeeded');
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
    expect(always.output.status).toBe('failed');
  });

  it('loops stream-delta through transfer-more? once per disk, in one transfer execution per VM', async () => {
    const r = await run({ vmCount: 2, disksPerVm: 4 });
    expect(r.counts.get('stream-delta')).toBe(8);
    const choices = r.events.filter((e) => e.type === 'StateEntered' && e.state.name === 'transfer-more?');
    expect(choices).toHaveLength(8);
    // disks-done? after snapshot-previous and after the transfer execution, per VM.
    const done = r.events.filter((e) => e.type === 'StateEntered' && e.state.name === 'disks-done?');
    expect(done).toHaveLength(4);
    expect(r.output.status).toBe('succeeded');
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
    // record-failure records each VM with both errors.
    expect(r.counts.get('record-failure')).toBe(3);
    for (const input of r.inputsOf('record-failure')) {
      expect(input).toMatchObject({
        failure: { Error: 'XcrPermanentError' },
        rollbackFailure: { Error: 'XcrPermanentError' },
      });
    }
    for (const v of r.vms) {
      expect(v).toMatchObject({ status: 'failed', errorCode: 'XcrPermanentError' });
      expect(v.message).toMatch(/the rollback failed too \(XcrPermanentError: rollback failed\)/);
    }
    expect(r.output).toMatchObject({ status: 'failed', vmCount: 3, failed: 3 });
  });

  it('a VM whose failure cannot be recorded either counts as failed no-result, the others as they ended', async () => {
    const r = await run({
      vmCount: 3,
      inject: (step, input) => {
        const vm = (input as { vmUuid?: string }).vmUuid;
        if (vm !== fakeUuid(1)) return;
        if (step === 'commit-or-rollback') throw new NamedError('XcrPermanentError', 'destination down');
        if (step === 'record-failure') throw new NamedError('XcrTransientError', 'run store throttled');
      },
    });
    expect(r.result.status).toBe('SUCCEEDED');
    // Retried as a transient error (3 retries), then caught: result-lost ends the iteration.
    expect(r.counts.get('record-failure')).toBe(4);
    expect(r.events.some((e) => e.type === 'StateEntered' && e.state.name === 'result-lost')).toBe(true);
    expect(r.vms.map((v) => [v.status, v.errorCode])).toEqual([
      ['succeeded', undefined],
      ['failed', 'no-result'],
      ['succeeded', undefined],
    ]);
    expect(r.output).toMatchObject({ status: 'partial', vmCount: 3, succeeded: 2, failed: 1 });
  });

  it(`runs the VMs in batches of ${BATCH_SIZE}, one child execution each, named after the run and the batch`, async () => {
    const r = await run({ vmCount: 2 * BATCH_SIZE + 7, disksPerVm: 1 }, 'wide', 'xcr-wide-batches');
    expect(r.output).toMatchObject({
      status: 'succeeded',
      vmCount: 2 * BATCH_SIZE + 7,
      succeeded: 2 * BATCH_SIZE + 7,
    });
    const loads = r.inputsOf('load-batch') as LoadBatchInput[];
    expect(loads.map((l) => l.batchIndex).sort()).toEqual([0, 1, 2]);
    // <MD5 of the run id>-b<index> (States.Hash): the same name when run-batch is retried.
    const md5 = createHash('md5').update('xcr-wide-batches').digest('hex');
    const batchNames = [...r.executions].filter((n) => n.startsWith(`${md5}-b`)).sort();
    expect(batchNames).toEqual([0, 1, 2].map((i) => `${md5}-b${i}`));
    // Every VM in order, each once, with its work-list index.
    expect(r.vms.map((v) => v.vmUuid)).toEqual(
      Array.from({ length: 2 * BATCH_SIZE + 7 }, (_, i) => fakeUuid(i)),
    );
    const indexes = (r.inputsOf('snapshot-previous') as { index: number }[])
      .map((i) => i.index)
      .sort((a, b) => a - b);
    expect(indexes).toEqual(Array.from({ length: 2 * BATCH_SIZE + 7 }, (_, i) => i));
  }, 120_000);

  it('a batch that fails as a whole costs its own VMs (no-result), never the next batches', async () => {
    const r = await run(
      {
        vmCount: BATCH_SIZE + 2,
        disksPerVm: 1,
        inject: (step, input) => {
          if (step === 'load-batch' && (input as LoadBatchInput).batchIndex === 0)
            throw new NamedError('XcrPermanentError', 'run store unavailable');
        },
      },
      'wide',
      'xcr-wide-batch-fails',
    );
    expect(r.result.status).toBe('SUCCEEDED');
    expect(r.output).toMatchObject({
      status: 'partial',
      vmCount: BATCH_SIZE + 2,
      succeeded: 2,
      failed: BATCH_SIZE,
    });
    expect(r.output.failures).toHaveLength(20);
    expect(r.output.failures[0]).toMatchObject({ vmUuid: fakeUuid(0), errorCode: 'no-result' });
    expect(r.inputsOf('finish-run')[0]).toMatchObject({ batchFailure: { Error: 'States.TaskFailed' } });
  }, 120_000);

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
      definition: definitions.get('web')!.main,
      children: definitions.get('web')!.children,
      input: { jobId: 'web', scheduledTime: '2026-11-26T18:00:00Z' },
      executionName: 'concurrency',
      handlers,
      retryIntervalMs: 0,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(peak).toBe(3);
  });
});
