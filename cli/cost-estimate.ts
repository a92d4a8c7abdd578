/** `xcr validate`'s monthly cost estimate of a job (the model and prices: functions/cost/). */
import { scheduleGapMinutes } from '../functions/config/schedule.js';
import type { JobConfig } from '../functions/config/schema.js';
import { monthlyCost, runModel } from '../functions/cost/estimate.js';
import { PRICES } from '../functions/cost/prices.js';
import { STEP_MEMORY_MIB } from '../infra/step-sizing.js';

export interface JobEstimate {
  jobId: string;
  /** Minutes between runs (a cron schedule: its smallest gap, so the estimate is an upper bound). */
  intervalMinutes: number;
  runsPerMonth: number;
  usdPerVmMonth: number;
  /** VMs listed by uuid; undefined for a job that selects by tag. */
  vms?: number;
  usdPerMonth?: number;
  region: string;
}

/** Assumes one disk per VM, a delta run that sends little, no retries (see functions/cost/estimate.ts). */
export function estimateJob(job: JobConfig): JobEstimate {
  const intervalMinutes = scheduleGapMinutes(job.schedule) ?? 10;
  const vms = 'uuids' in job.vms ? job.vms.uuids.length : undefined;
  const n = vms ?? 1;
  const cost = monthlyCost(
    runModel({ vms: n, streamInvocationsPerVm: 1, memoryMiB: STEP_MEMORY_MIB }),
    intervalMinutes,
  );
  return {
    jobId: job.id,
    intervalMinutes,
    runsPerMonth: Math.round(cost.runsPerMonth),
    usdPerVmMonth: round(cost.usd / n),
    ...(vms !== undefined ? { vms, usdPerMonth: round(cost.usd) } : {}),
    region: PRICES.region,
  };
}

const round = (usd: number) => Number(usd.toFixed(usd < 1 ? 4 : 2));

export function estimateLine(e: JobEstimate): string {
  const total = e.vms !== undefined ? `, ${e.vms} VM${e.vms === 1 ? '' : 's'} ≈ $${e.usdPerMonth}` : '';
  return `  ${e.jobId}: ≈ $${e.usdPerVmMonth} per VM-month${total} (${e.runsPerMonth} runs a month, every ${e.intervalMinutes} min; ${e.region} prices, assumed step times, 1 disk per VM)\n`;
}
