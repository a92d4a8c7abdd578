import type { StepHandlers } from '../../cli/local-runner.js';
import type {
  DiskPlan,
  FinishRunInput,
  LoadBatchInput,
  LockCheckInput,
  LockCheckOutput,
  RecordFailureInput,
  VmResult,
  VmRunState,
  VmWorkItem,
} from '../../functions/replication/contract.js';
import {
  batchPlan,
  failedVmResult,
  loadBatch,
  recordVmResult,
  summarizeRun,
} from '../../functions/replication/run-results.js';
import type { RunStore } from '../../functions/runstore/port.js';
import { MemoryRunStore } from './memory-run-store.js';

/** A deterministic, realistic-looking uuid for VM `i` (payload sizes match real ones). */
export function fakeUuid(i: number, salt = 0): string {
  const hex = (i * 2654435761 + salt * 40503).toString(16).padStart(12, '0').slice(-12);
  return `${(salt + 0x1a2b3c4d).toString(16).slice(-8)}-4e5f-4a6b-8c7d-${hex}`;
}

export class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export interface FakeOptions {
  vmCount?: number;
  disksPerVm?: number;
  skipped?: boolean;
  /**
   * cbt mode as stream-delta runs it: each invocation sends at most `chunkBytes` of a disk of
   * `diskBytes` (every block changed) and moves its cursor; the disk is done at its end.
   */
  cbt?: { chunkBytes: number; diskBytes: number };
  /** Called before each step runs; throw from it to inject a failure. */
  inject?: (step: string, input: unknown, call: number) => void;
  runs?: RunStore;
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * In-process fake step handlers with the contract's shapes and realistic payload sizes. What the
 * steps do with the run store is the real code (functions/replication/run-results.ts) over an
 * in-memory store; XAPI work is faked.
 */
export function fakeHandlers(o: FakeOptions = {}) {
  const calls: { step: string; input: unknown }[] = [];
  const counts = new Map<string, number>();
  const runs = o.runs ?? new MemoryRunStore();
  const record = (step: string, input: unknown) => {
    // Thousands of VMs: keep the inputs of small runs only (tests look at them, benches count).
    if (calls.length < 10_000) calls.push({ step, input });
    const n = (counts.get(step) ?? 0) + 1;
    counts.set(step, n);
    o.inject?.(step, input, n);
  };
  const disks = o.disksPerVm ?? 2;
  const handlers: StepHandlers = {
    'lock-check': async (raw) => {
      record('lock-check', raw);
      const input = raw as LockCheckInput;
      const base = { jobId: input.jobId, runId: input.runId, startedAt: '2026-11-26T18:00:00.000Z' };
      if (o.skipped) {
        const reason = 'run xcr-previous of job web is still running (lease until …)';
        return { ...base, status: 'skipped', reason, ...batchPlan(0) } satisfies LockCheckOutput;
      }
      const vms = Array.from({ length: o.vmCount ?? 3 }, (_, i) => fakeUuid(i));
      await runs.putWorkList(input.runId, vms);
      return { ...base, status: 'acquired', ...batchPlan(vms.length) } satisfies LockCheckOutput;
    },
    'load-batch': async (raw) => {
      record('load-batch', raw);
      return loadBatch(runs, raw as LoadBatchInput);
    },
    'snapshot-previous': async (raw) => {
      record('snapshot-previous', raw);
      const item = raw as VmWorkItem;
      const plans: DiskPlan[] = Array.from({ length: disks }, (_, d) => ({
        userdevice: String(d),
        sourceVdi: fakeUuid(item.index, 10 + d),
        baseVdi: fakeUuid(item.index, 20 + d),
        targetVdi: fakeUuid(item.index, 30 + d),
        kind: 'delta',
        virtualSize: o.cbt ? o.cbt.diskBytes : 107_374_182_400,
        bytes: 0,
        done: false,
        ...(o.cbt ? { mode: 'cbt' as const, cursor: 0 } : {}),
      }));
      const state: VmRunState = {
        ...item,
        startedAt: '2026-11-26T18:00:01.000Z',
        sourceSnapshot: fakeUuid(item.index, 40),
        disks: plans,
        chain: 3,
        done: false,
        warnings: [],
      };
      return state;
    },
    'stream-delta': async (raw) => {
      record('stream-delta', raw);
      const state = structuredClone(raw) as VmRunState;
      const next = state.disks.find((d) => !d.done);
      if (next && o.cbt) {
        const sent = Math.min(o.cbt.chunkBytes, next.virtualSize - (next.cursor ?? 0));
        next.cursor = (next.cursor ?? 0) + sent;
        next.bytes += sent;
        next.done = next.cursor >= next.virtualSize;
      } else if (next) {
        next.done = true;
        next.bytes = 3_221_225_472;
      }
      state.done = state.disks.every((d) => d.done);
      return state;
    },
    'commit-or-rollback': async (raw) => {
      record('commit-or-rollback', raw);
      const state = raw as VmRunState;
      const failed = Boolean(state.failure);
      const result: VmResult = {
        vmUuid: state.vmUuid,
        status: failed ? 'failed' : 'succeeded',
        kind: 'delta',
        bytes: failed ? 0 : (state.disks ?? []).reduce((s, d) => s + d.bytes, 0),
        durationMs: 183_042,
        ...(failed
          ? {
              errorCode: state.failure?.Error ?? 'unknown',
              message: 'VDI_IO_ERROR: device I/O error on the source SR',
            }
          : { recoveryPoint: fakeUuid(state.index, 50) }),
      };
      await recordVmResult(runs, silent, state, result);
      return result;
    },
    'record-failure': async (raw) => {
      record('record-failure', raw);
      const input = raw as RecordFailureInput;
      const result = failedVmResult(input);
      await runs.putResult(input.runId, input.index, result);
      return result;
    },
    'finish-run': async (raw) => {
      record('finish-run', raw);
      return summarizeRun(runs, raw as FinishRunInput, '2026-11-26T18:09:00.000Z');
    },
  };
  return { handlers, calls, counts, runs };
}
