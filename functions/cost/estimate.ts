/**
 * What a job costs on AWS per month, from what one run uses: state transitions, Lambda GB-seconds
 * and requests, DynamoDB lease writes and the schedule's invocations, priced with `prices.ts`.
 * Pure. `usage` comes either from measured local executions (`npm run bench -- cost`) or from
 * `runModel`, the workflow's shape with assumed step durations (`xcr validate`).
 */
import { DAYS_PER_MONTH, PRICES } from './prices.js';

/** What one run of a job uses, per VM where it says so. */
export interface RunUsage {
  transitionsPerRun: number;
  /** Σ (duration s × memory GB) over the run's Lambda invocations. */
  lambdaGbSecondsPerRun: number;
  lambdaRequestsPerRun: number;
  dynamoWritesPerRun: number;
}

export interface MonthlyCost {
  runsPerMonth: number;
  usd: number;
  parts: { stepFunctions: number; lambda: number; dynamodb: number; scheduler: number };
}

export function monthlyCost(usage: RunUsage, intervalMinutes: number): MonthlyCost {
  const runsPerMonth = (DAYS_PER_MONTH * 24 * 60) / intervalMinutes;
  const parts = {
    stepFunctions: usage.transitionsPerRun * PRICES.sfnPerTransition * runsPerMonth,
    lambda:
      (usage.lambdaGbSecondsPerRun * PRICES.lambdaArmPerGbSecond +
        usage.lambdaRequestsPerRun * PRICES.lambdaPerRequest) *
      runsPerMonth,
    dynamodb: usage.dynamoWritesPerRun * PRICES.dynamoPerWrite * runsPerMonth,
    scheduler: PRICES.schedulerPerInvocation * runsPerMonth,
  };
  const usd = parts.stepFunctions + parts.lambda + parts.dynamodb + parts.scheduler;
  return { runsPerMonth, usd, parts };
}

/**
 * Seconds each step is assumed to take when nothing was measured: a delta run that finds little to
 * send (XAPI calls on a LAN, tens of ms each). `npm run bench -- cost` prints measured ones.
 */
export const ASSUMED_STEP_SECONDS = {
  'lock-check': 2,
  'snapshot-previous': 3,
  'stream-delta': 5,
  'commit-or-rollback': 3,
  'finish-run': 1,
} as const;

export type StepSeconds = Record<keyof typeof ASSUMED_STEP_SECONDS, number>;

/**
 * The workflow's shape: per run lock-check, skipped?, replicate-vms, finish-run; per VM
 * snapshot-previous, then (stream-delta, disks-done?) once per stream-delta invocation, then
 * commit-or-rollback. Lease writes: lock-check's acquire and finish-run's release per run;
 * snapshot-previous's, every stream-delta's and commit's renewal per VM. No retries, no failures.
 */
export function runModel(o: {
  vms: number;
  /** stream-delta invocations per VM (vhd: ceil(disks / diskStreams); cbt: + chunks). */
  streamInvocationsPerVm: number;
  memoryMiB: StepSeconds;
  seconds?: StepSeconds;
}): RunUsage {
  const s = o.seconds ?? ASSUMED_STEP_SECONDS;
  const gbs = (step: keyof StepSeconds) => s[step] * (o.memoryMiB[step] / 1024);
  const k = o.streamInvocationsPerVm;
  return {
    transitionsPerRun: 4 + o.vms * (2 + 2 * k),
    lambdaGbSecondsPerRun:
      gbs('lock-check') +
      gbs('finish-run') +
      o.vms * (gbs('snapshot-previous') + k * gbs('stream-delta') + gbs('commit-or-rollback')),
    lambdaRequestsPerRun: 2 + o.vms * (2 + k),
    dynamoWritesPerRun: 2 + o.vms * (2 + k),
  };
}
