import type { RunStepHandlers as StepHandlers } from '../../cli/local-runner.js';
import type {
  DiskPlan,
  FinishRunInput,
  LockCheckInput,
  LockCheckOutput,
  RunResult,
  VmResult,
  VmRunState,
  VmWorkItem,
} from '../../functions/replication/contract.js';

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
  /** Called before each step runs; throw from it to inject a failure. */
  inject?: (step: string, input: unknown, call: number) => void;
}

/** In-process fake step handlers with the contract's shapes and realistic payload sizes. */
export function fakeHandlers(o: FakeOptions = {}) {
  const calls: { step: string; input: unknown }[] = [];
  const counts = new Map<string, number>();
  const record = (step: string, input: unknown) => {
    calls.push({ step, input });
    const n = (counts.get(step) ?? 0) + 1;
    counts.set(step, n);
    o.inject?.(step, input, n);
  };
  const disks = o.disksPerVm ?? 2;
  const handlers: StepHandlers = {
    'lock-check': async (raw) => {
      record('lock-check', raw);
      const input = raw as LockCheckInput;
      const out: LockCheckOutput = {
        jobId: input.jobId,
        runId: input.runId,
        startedAt: '2026-11-26T18:00:00.000Z',
        status: o.skipped ? 'skipped' : 'acquired',
        ...(o.skipped ? { reason: 'run xcr-previous of job web is still running (lease until …)' } : {}),
        vms: o.skipped
          ? []
          : Array.from({ length: o.vmCount ?? 3 }, (_, i) => ({
              jobId: input.jobId,
              runId: input.runId,
              vmUuid: fakeUuid(i),
              startedAt: '2026-11-26T18:00:00.000Z',
            })),
      };
      return out;
    },
    'snapshot-previous': async (raw) => {
      record('snapshot-previous', raw);
      const item = raw as VmWorkItem;
      const idx = Number.parseInt(item.vmUuid.slice(-4), 16);
      const plans: DiskPlan[] = Array.from({ length: disks }, (_, d) => ({
        userdevice: String(d),
        sourceVdi: fakeUuid(idx, 10 + d),
        baseVdi: fakeUuid(idx, 20 + d),
        targetVdi: fakeUuid(idx, 30 + d),
        kind: 'delta',
        virtualSize: 107_374_182_400,
        bytes: 0,
        done: false,
      }));
      const state: VmRunState = {
        ...item,
        startedAt: '2026-11-26T18:00:01.000Z',
        sourceSnapshot: fakeUuid(idx, 40),
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
      if (next) {
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
          : { recoveryPoint: fakeUuid(Number.parseInt(state.vmUuid.slice(-4), 16), 50) }),
      };
      return result;
    },
    'finish-run': async (raw) => {
      record('finish-run', raw);
      const input = raw as FinishRunInput;
      const vms = input.results ?? [];
      const failed = vms.filter((v) => v.status === 'failed').length;
      const result: RunResult = {
        jobId: input.jobId,
        runId: input.runId,
        status:
          input.status === 'skipped'
            ? 'skipped'
            : input.mapFailure || (failed && failed === vms.length)
              ? 'failed'
              : failed
                ? 'partial'
                : 'succeeded',
        startedAt: input.startedAt,
        finishedAt: '2026-11-26T18:09:00.000Z',
        bytes: vms.reduce((s, v) => s + v.bytes, 0),
        vms,
        ...(input.reason ? { reason: input.reason } : {}),
      };
      return result;
    },
  };
  return { handlers, calls, counts };
}
