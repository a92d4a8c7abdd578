import { describe, expect, it } from 'vitest';
import { BATCH_SIZE, MAX_REPORTED_FAILURES, type VmResult } from '../../../functions/replication/contract.js';
import {
  batchPlan,
  loadBatch,
  NO_RESULT,
  runVmResults,
  summarizeRun,
} from '../../../functions/replication/run-results.js';
import { MemoryRunStore } from '../../support/memory-run-store.js';

const run = { jobId: 'web', runId: 'r1', startedAt: '2026-12-01T10:00:00.000Z' };
const ok = (vmUuid: string, bytes = 10): VmResult => ({ vmUuid, status: 'succeeded', bytes, durationMs: 1 });
const bad = (vmUuid: string, message = 'VDI_IO_ERROR: gone'): VmResult => ({
  vmUuid,
  status: 'failed',
  bytes: 0,
  durationMs: 1,
  errorCode: 'VDI_IO_ERROR',
  message,
});
const finish = (vmCount: number) => ({ ...run, status: 'acquired' as const, ...batchPlan(vmCount) });

describe('the run store as the steps read it', () => {
  it('batches: ceil(VMs / BATCH_SIZE), each its slice with its offset, never past the VM count', async () => {
    expect(batchPlan(0).batch).toEqual({ index: 0, count: 0 });
    expect(batchPlan(BATCH_SIZE).batch.count).toBe(1);
    expect(batchPlan(BATCH_SIZE + 1).batch.count).toBe(2);
    const runs = new MemoryRunStore();
    const vms = Array.from({ length: BATCH_SIZE + 5 }, (_, i) => `vm-${i}`);
    // A lock-check that was retried after selecting fewer VMs leaves items past its count.
    await runs.putWorkList(run.runId, [...vms, 'stale-1', 'stale-2']);
    const second = await loadBatch(runs, { ...run, batchIndex: 1, vmCount: vms.length });
    expect(second).toEqual({ ...run, offset: BATCH_SIZE, vms: vms.slice(BATCH_SIZE) });
    expect((await loadBatch(runs, { ...run, batchIndex: 2, vmCount: vms.length })).vms).toEqual([]);
    const seen: string[] = [];
    const summary = await summarizeRun(runs, finish(vms.length), 'end', (vm) => seen.push(vm.vmUuid));
    expect(summary.vmCount).toBe(vms.length);
    expect(seen).toEqual(vms); // the same pass, in order, none of the stale items
  });

  it('a VM without a result, or with a result of another VM, is failed no-result; the rest as recorded', async () => {
    const runs = new MemoryRunStore();
    await runs.putWorkList(run.runId, ['a', 'b', 'c', 'd']);
    await runs.putResult(run.runId, 0, ok('a', 7));
    await runs.putResult(run.runId, 2, bad('c'));
    await runs.putResult(run.runId, 3, ok('not-d'));
    const all: VmResult[] = [];
    for await (const vm of runVmResults(runs, run.runId)) all.push(vm);
    expect(all.map((v) => [v.vmUuid, v.status, v.errorCode])).toEqual([
      ['a', 'succeeded', undefined],
      ['b', 'failed', NO_RESULT],
      ['c', 'failed', 'VDI_IO_ERROR'],
      ['d', 'failed', NO_RESULT],
    ]);
    expect(all[3]!.message).toMatch(/names VM not-d/);
    expect(await summarizeRun(runs, finish(4), '2026-12-01T10:05:00.000Z')).toEqual({
      ...run,
      status: 'partial',
      finishedAt: '2026-12-01T10:05:00.000Z',
      bytes: 7,
      vmCount: 4,
      succeeded: 1,
      failed: 3,
      failures: [
        { vmUuid: 'b', errorCode: NO_RESULT, message: expect.stringMatching(/no outcome was recorded/) },
        { vmUuid: 'c', errorCode: 'VDI_IO_ERROR', message: 'VDI_IO_ERROR: gone' },
        { vmUuid: 'd', errorCode: NO_RESULT, message: expect.any(String) },
      ],
    });
  });

  it(`reads a run of thousands page by page; names the first ${MAX_REPORTED_FAILURES} failures, messages cut`, async () => {
    const runs = new MemoryRunStore();
    const n = 2_345;
    await runs.putWorkList(
      run.runId,
      Array.from({ length: n }, (_, i) => `vm-${i}`),
    );
    for (let i = 0; i < n; i++) {
      await runs.putResult(run.runId, i, i % 2 ? bad(`vm-${i}`, 'x'.repeat(1_000)) : ok(`vm-${i}`));
    }
    const s = await summarizeRun(runs, finish(n), 'end');
    expect(s).toMatchObject({
      status: 'partial',
      vmCount: n,
      succeeded: 1_173,
      failed: 1_172,
      bytes: 11_730,
    });
    expect(s.failures.map((f) => f.vmUuid)).toEqual(Array.from({ length: 20 }, (_, i) => `vm-${2 * i + 1}`));
    expect(s.failures.every((f) => Buffer.byteLength(f.message!) === 300)).toBe(true);
  });

  it('a failure message is cut by UTF-8 bytes at a character boundary (payloads are limited in bytes)', async () => {
    const runs = new MemoryRunStore();
    await runs.putWorkList(run.runId, ['vm-0']);
    await runs.putResult(run.runId, 0, bad('vm-0', `磁盘错误 💾 ${'错'.repeat(500)}`));
    const [f] = (await summarizeRun(runs, finish(1), 'end')).failures;
    expect(Buffer.byteLength(f!.message!)).toBeLessThanOrEqual(300);
    expect(f!.message!.startsWith('磁盘错误 💾 错')).toBe(true);
    expect(f!.message!.endsWith('错…')).toBe(true);
  });

  it('all failed is failed, none is succeeded, a skipped run reads nothing', async () => {
    const runs = new MemoryRunStore();
    await runs.putWorkList(run.runId, ['a']);
    await runs.putResult(run.runId, 0, bad('a'));
    expect((await summarizeRun(runs, finish(1), 'end')).status).toBe('failed');
    expect((await summarizeRun(runs, finish(0), 'end')).status).toBe('succeeded');
    const skipped = await summarizeRun(runs, { ...finish(0), status: 'skipped', reason: 'held' }, 'end');
    expect(skipped).toMatchObject({ status: 'skipped', vmCount: 0, failures: [], reason: 'held' });
  });
});
