/**
 * The execution-ended path of the failover and failback machines: which run an ended execution
 * is about, and that it releases the job lease (and reports the run failed) only while that run
 * still holds it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseStatusChange,
  parseWorkflowEnded,
  type StatusChangeEvent,
} from '../../../functions/handlers/lambda/execution-ended.js';
import { FileLeaseStore } from '../../../functions/lease/file.js';
import { leaseKey } from '../../../functions/replication/context.js';
import {
  type WorkflowEnded,
  workflowEnded,
  workflowEndedOf,
} from '../../../functions/replication/failover/ended.js';
import { ManualClock } from '../../support/lease-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'xcr-fo-ended-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const START = Date.UTC(2026, 11, 1, 10);
const detail = (input: unknown, status = 'ABORTED') => ({
  name: 'exec-1',
  status,
  startDate: START,
  stopDate: START + 5 * 60_000,
  input: typeof input === 'string' ? input : JSON.stringify(input),
  error: null,
  cause: null,
});

describe('the run an ended failover or failback execution is about', () => {
  it.each([
    {
      what: 'a failover named by its execution',
      event: { workflow: 'failover', detail: detail({ jobId: 'web', planned: true }) },
      want: { workflow: 'failover', jobId: 'web', run: 'exec-1' },
    },
    {
      what: 'a resumed failover: the input names the run',
      event: { workflow: 'failover', detail: detail({ jobId: 'web', run: 'fo-1' }, 'TIMED_OUT') },
      want: { workflow: 'failover', run: 'fo-1', status: 'TIMED_OUT' },
    },
    {
      what: 'an undo: its VM and the undo flag',
      event: { workflow: 'failover', detail: detail({ jobId: 'web', undo: { vm: 'vm-a' } }) },
      want: { run: 'exec-1', vm: 'vm-a', undo: true },
    },
    {
      what: 'a failback: its VM',
      event: { workflow: 'failback', detail: detail({ jobId: 'web', vm: 'vm-a', run: 'fb-1' }, 'FAILED') },
      want: { workflow: 'failback', run: 'fb-1', vm: 'vm-a', status: 'FAILED' },
    },
    {
      what: 'an empty run falls back to the execution name',
      event: { workflow: 'failback', detail: detail({ jobId: 'web', vm: 'vm-a', run: '' }) },
      want: { run: 'exec-1', vm: 'vm-a' },
    },
  ] as { what: string; event: StatusChangeEvent; want: Partial<WorkflowEnded> }[])(
    '$what',
    ({ event, want }) => {
      const got = parseWorkflowEnded(event)!;
      expect(got).toMatchObject({
        status: 'ABORTED',
        startedAt: '2026-12-01T10:00:00.000Z',
        stoppedAt: '2026-12-01T10:05:00.000Z',
        ...want,
      });
      if (!want.vm) expect(got.vm).toBeUndefined();
      if (!want.undo) expect(got.undo).toBeUndefined();
    },
  );

  it.each([
    {
      what: 'a status that needs no cleanup',
      event: { workflow: 'failover', detail: detail({ jobId: 'web' }, 'SUCCEEDED') },
    },
    { what: 'an input without a job', event: { workflow: 'failover', detail: detail({ run: 'fo-1' }) } },
    { what: 'an input that is not JSON', event: { workflow: 'failback', detail: detail('not json') } },
    { what: 'an input that is not an object', event: { workflow: 'failback', detail: detail('[1]') } },
    { what: 'an unknown workflow', event: { workflow: 'drill', detail: detail({ jobId: 'web' }) } },
    { what: 'a job run (no workflow)', event: { detail: detail({ jobId: 'web' }) } },
  ] as { what: string; event: StatusChangeEvent }[])('ignores $what', ({ event }) => {
    expect(parseWorkflowEnded(event)).toBeUndefined();
  });

  it('a job run keeps its reading: the run id is the execution name even if the input had a "run"', () => {
    expect(parseStatusChange({ detail: detail({ jobId: 'web', run: 'x' }) })).toEqual({
      jobId: 'web',
      runId: 'exec-1',
      status: 'ABORTED',
      startedAt: '2026-12-01T10:00:00.000Z',
      stoppedAt: '2026-12-01T10:05:00.000Z',
    });
  });

  it('the cause is cut to 500 characters', () => {
    const e = workflowEndedOf('failover', {
      jobId: 'web',
      name: 'n',
      input: {},
      status: 'FAILED',
      startedAt: '',
      stoppedAt: '',
      cause: 'x'.repeat(500),
    });
    expect(e.cause).toHaveLength(500);
    const parsed = parseWorkflowEnded({
      workflow: 'failover',
      detail: { ...detail({ jobId: 'web' }, 'FAILED'), error: 'E', cause: 'y'.repeat(5000) },
    });
    expect(parsed?.cause).toHaveLength(500);
  });
});

type LeaseState =
  | 'held by the run'
  | 'released by the end step'
  | 'held by another run'
  | 'expired, taken over'
  | 'expired, not taken over';

describe('workflowEnded releases the lease only while the run holds it', () => {
  let n = 0;
  async function setup(state: LeaseState) {
    const clock = new ManualClock();
    const leases = new FileLeaseStore(dir, { now: clock.now });
    const jobId = `job-${++n}`;
    const key = leaseKey(jobId);
    const ttl = 60_000;
    await leases.acquire(key, 'fo-1', ttl);
    if (state === 'released by the end step') await leases.release(key, 'fo-1');
    if (state === 'held by another run') {
      await leases.release(key, 'fo-1');
      await leases.acquire(key, 'other', ttl);
    }
    if (state.startsWith('expired')) clock.advance(2 * ttl);
    if (state === 'expired, taken over') await leases.acquire(key, 'other', ttl);
    const events: { type: string; detail: Record<string, unknown> }[] = [];
    const logs: { level: string; message: string }[] = [];
    const log = (level: string) => (message: string) => logs.push({ level, message });
    const deps = {
      leases,
      events: {
        publish: async () => {
          throw new Error('a failover never publishes a run summary');
        },
        publishEvent: async (type: string, d: Record<string, unknown>) => {
          events.push({ type, detail: d });
        },
      },
      logger: { info: log('info'), warn: log('warn'), error: log('error') },
    };
    const holder = async () => {
      const probe = await leases.acquire(key, 'probe', 1000);
      if (!probe.acquired) return probe.holder;
      await leases.release(key, 'probe');
      return undefined;
    };
    return { jobId, deps, events, logs, holder };
  }

  const ended = (jobId: string, o: Partial<WorkflowEnded> = {}): WorkflowEnded => ({
    workflow: 'failover',
    jobId,
    run: 'fo-1',
    name: 'fo-1-resume',
    status: 'ABORTED',
    startedAt: '2026-12-01T10:00:00.000Z',
    stoppedAt: '2026-12-01T10:05:00.000Z',
    ...o,
  });

  it.each([
    { state: 'held by the run', released: true, holderAfter: undefined },
    { state: 'expired, not taken over', released: true, holderAfter: undefined },
    { state: 'released by the end step', released: false, holderAfter: undefined },
    { state: 'held by another run', released: false, holderAfter: 'other' },
    { state: 'expired, taken over', released: false, holderAfter: 'other' },
  ] as { state: LeaseState; released: boolean; holderAfter: string | undefined }[])(
    'lease $state: released $released',
    async ({ state, released, holderAfter }) => {
      const s = await setup(state);
      const r = await workflowEnded(s.deps, ended(s.jobId));
      expect(r).toEqual({ workflow: 'failover', jobId: s.jobId, run: 'fo-1', status: 'ABORTED', released });
      expect(await s.holder()).toBe(holderAfter);
      expect(s.events.map((e) => e.type)).toEqual(released ? ['xcr failover failed'] : []);
      expect(s.logs.map((l) => l.level)).toEqual([released ? 'error' : 'info']);
    },
  );

  it.each([
    {
      e: { status: 'ABORTED' },
      type: 'xcr failover failed',
      detail: { run: 'fo-1', status: 'ABORTED' },
      message:
        'the execution was stopped before failover-end; lease released; a new execution with "run": "fo-1" resumes it',
    },
    {
      e: { status: 'TIMED_OUT', vm: 'vm-a', undo: true },
      type: 'xcr failover failed',
      detail: { vm: 'vm-a', undo: true, status: 'TIMED_OUT' },
      message:
        'the execution timed out before failover-end; lease released; a new execution with "run": "fo-1" resumes it',
    },
    {
      e: { workflow: 'failback', status: 'FAILED', vm: 'vm-a', error: 'States.Runtime', cause: 'bad path' },
      type: 'xcr failback failed',
      detail: { vm: 'vm-a', status: 'FAILED' },
      message:
        'the execution failed before failback-end (States.Runtime: bad path); lease released; a new execution with "run": "fo-1" resumes it',
    },
  ] as { e: Partial<WorkflowEnded>; type: string; detail: Record<string, unknown>; message: string }[])(
    'the event: $type, $e.status',
    async ({ e, type, detail: want, message }) => {
      const s = await setup('held by the run');
      await workflowEnded(s.deps, ended(s.jobId, e));
      expect(s.events).toEqual([{ type, detail: { jobId: s.jobId, run: 'fo-1', ...want, message } }]);
    },
  );

  it('a duplicate or late status-change event changes nothing', async () => {
    const s = await setup('held by the run');
    expect((await workflowEnded(s.deps, ended(s.jobId))).released).toBe(true);
    expect((await workflowEnded(s.deps, ended(s.jobId))).released).toBe(false);
    expect(s.events).toHaveLength(1);
  });
});
