/**
 * Payloads and histories bounded by construction: fake steps through the real synthesized
 * definitions (the bench runs 5,000 VMs and a 50 TiB cbt disk; here enough to cross batch and
 * transfer-execution boundaries, asserting the figures do not grow with the work).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowDefinitions } from '../../../cli/local-runner.js';
import { synthesizeDefinitions } from '../../../cli/workflow-definitions.js';
import { BATCH_SIZE, TRANSFER_INVOCATIONS } from '../../../functions/replication/contract.js';
import { AWS_HISTORY_EVENTS as E, measureRun } from '../../support/history.js';
import { workflowTestConfig } from './config.js';

const PAYLOAD_TARGET = 16_384;
const HISTORY_TARGET = 20_000;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
let defs: WorkflowDefinitions;

beforeAll(() => {
  defs = synthesizeDefinitions(workflowTestConfig).get('wide')!;
}, 180_000);

describe('bounded payloads and histories', () => {
  it('a full batch and three batches: the same largest payload and execution history, both within target', async () => {
    const one = await measureRun(defs, 'wide', { vmCount: BATCH_SIZE, disksPerVm: 2 });
    const three = await measureRun(defs, 'wide', { vmCount: 2 * BATCH_SIZE + 1, disksPerVm: 2 });
    expect(three.summary).toMatchObject({ status: 'succeeded', vmCount: 2 * BATCH_SIZE + 1 });
    for (const r of [one, three]) {
      expect(r.maxPayload).toBeLessThanOrEqual(PAYLOAD_TARGET);
      expect(r.maxHistory).toBeLessThanOrEqual(HISTORY_TARGET);
    }
    // Nothing grows with the VM count: the largest execution is a full batch, the largest payload its VM list.
    expect(three.maxHistory).toBe(one.maxHistory);
    // (but for the digits of the batch's work-list offset: "offset":500 against "offset":0)
    expect(three.maxPayload - one.maxPayload).toBeLessThanOrEqual(String(2 * BATCH_SIZE).length - 1);
    expect(three.maxPayloadAt).toBe('load-batch output');
    // A full batch: 11 events of its own + 22 per VM (the arithmetic in the contract's BATCH_SIZE).
    const perVm = E.mapIteration + E.lambdaTask + E.otherState + E.syncTask + E.otherState + E.lambdaTask;
    expect(one.maxHistory).toBe(E.execution + E.lambdaTask + E.map + BATCH_SIZE * perVm);
    // The run, one execution per batch, one transfer execution per VM.
    expect(three.executions).toBe(1 + 3 + 2 * BATCH_SIZE + 1);
  }, 300_000);

  it('a cbt disk of more chunks than one transfer execution takes: its loop continues in the next, each within target', async () => {
    const job = workflowTestConfig.jobs.find((j) => j.id === 'wide')!;
    const chunkBytes = job.cbtChunkMiB * MiB;
    const diskBytes = 2 * 1024 * GiB;
    const r = await measureRun(defs, 'wide', { vmCount: 1, disksPerVm: 1, cbt: { chunkBytes, diskBytes } });
    const invocations = Math.ceil(diskBytes / chunkBytes);
    expect(invocations).toBeGreaterThan(TRANSFER_INVOCATIONS);
    expect(r.counts.get('stream-delta')).toBe(invocations);
    expect(r.summary).toMatchObject({ status: 'succeeded', bytes: diskBytes });
    // A full transfer execution: TRANSFER_INVOCATIONS × (task, count, choice) + the execution and its end.
    expect(r.maxHistory).toBe(
      E.execution + TRANSFER_INVOCATIONS * (E.lambdaTask + 2 * E.otherState) + E.otherState,
    );
    expect(r.maxHistory).toBeLessThanOrEqual(HISTORY_TARGET);
    expect(r.executions).toBe(1 + 1 + Math.ceil(invocations / TRANSFER_INVOCATIONS));
  }, 300_000);
});
