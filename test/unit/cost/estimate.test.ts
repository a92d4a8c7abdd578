import { describe, expect, it } from 'vitest';
import { estimateJob, estimateLine } from '../../../cli/cost-estimate.js';
import { parseConfig } from '../../../functions/config/load.js';
import { ASSUMED_STEP_SECONDS, monthlyCost, runModel } from '../../../functions/cost/estimate.js';
import { DAYS_PER_MONTH, PRICES } from '../../../functions/cost/prices.js';
import { minimalRawConfig } from '../../support/minimal-config.js';

const memory = {
  'lock-check': 1024,
  'snapshot-previous': 1024,
  'stream-delta': 2048,
  'commit-or-rollback': 1024,
  'finish-run': 1024,
};

describe('cost model', () => {
  it.each([
    // vms, stream invocations per VM → transitions, Lambda requests / lease writes per run
    [1, 1, 8, 5],
    [10, 1, 44, 32],
    [10, 3, 84, 52],
  ])('%i VMs, %i stream-delta invocations each', (vms, k, transitions, requests) => {
    const u = runModel({ vms, streamInvocationsPerVm: k, memoryMiB: memory });
    expect(u.transitionsPerRun).toBe(transitions);
    expect(u.lambdaRequestsPerRun).toBe(requests);
    expect(u.dynamoWritesPerRun).toBe(requests);
  });

  it('GB-seconds are duration × memory of each invocation', () => {
    const seconds = { ...ASSUMED_STEP_SECONDS, 'stream-delta': 4 };
    const u = runModel({ vms: 2, streamInvocationsPerVm: 1, memoryMiB: memory, seconds });
    const s = ASSUMED_STEP_SECONDS;
    expect(u.lambdaGbSecondsPerRun).toBeCloseTo(
      s['lock-check'] + s['finish-run'] + 2 * (s['snapshot-previous'] + 4 * 2 + s['commit-or-rollback']),
    );
  });

  it('prices a month of runs part by part; a 1-minute schedule costs ten times a 10-minute one', () => {
    const usage = {
      transitionsPerRun: 1000,
      lambdaGbSecondsPerRun: 100,
      lambdaRequestsPerRun: 10,
      dynamoWritesPerRun: 10,
    };
    const ten = monthlyCost(usage, 10);
    expect(ten.runsPerMonth).toBeCloseTo((DAYS_PER_MONTH * 24 * 60) / 10);
    expect(ten.parts.stepFunctions).toBeCloseTo(1000 * PRICES.sfnPerTransition * ten.runsPerMonth);
    expect(ten.parts.scheduler).toBeCloseTo(PRICES.schedulerPerInvocation * ten.runsPerMonth);
    expect(ten.usd).toBeCloseTo(Object.values(ten.parts).reduce((a, b) => a + b, 0));
    expect(monthlyCost(usage, 1).usd).toBeCloseTo(10 * ten.usd);
  });

  it('xcr validate estimates each job per VM and, for listed VMs, in all', () => {
    const raw = minimalRawConfig('fast');
    const job = raw.jobs[0]!;
    const config = parseConfig({
      ...raw,
      jobs: [
        {
          ...job,
          vms: { uuids: ['6f6b6c2e-1d1a-4c1b-9a55-0a3f0c1f2e01', '6f6b6c2e-1d1a-4c1b-9a55-0a3f0c1f2e02'] },
          schedule: { rate: '1 minute' },
          transferMode: 'cbt',
        },
        { ...job, id: 'tagged', schedule: { cron: '0/30 * * * ? *' } },
      ],
    });
    const [fast, tagged] = config.jobs.map(estimateJob);
    expect(fast).toMatchObject({ jobId: 'fast', intervalMinutes: 1, vms: 2, region: 'us-east-1' });
    expect(fast!.runsPerMonth).toBe(Math.round(DAYS_PER_MONTH * 24 * 60));
    expect(fast!.usdPerMonth).toBeCloseTo(2 * fast!.usdPerVmMonth, 1);
    expect(tagged).toMatchObject({ jobId: 'tagged', intervalMinutes: 30 });
    expect(tagged!.vms).toBeUndefined();
    expect(tagged!.usdPerVmMonth).toBeLessThan(fast!.usdPerVmMonth / 10);
    expect(estimateLine(fast!)).toMatch(
      /^ {2}fast: ≈ \$[\d.]+ per VM-month, 2 VMs ≈ \$[\d.]+ \(43830 runs a month, every 1 min; us-east-1 prices/,
    );
  });
});
