/**
 * What a VM costs on AWS, from executed local runs of the synthesized workflow (5 VMs × 2 disks,
 * concurrency 2, a delta run with a 4 KiB write per disk, after a full run):
 * - cost.sfn_transitions_per_vm_run: state transitions (states entered, retries included: what
 *   Step Functions bills) of the delta run's execution history / VMs.
 * - cost.usd_per_vm_month_10min / _1min: the run's transitions, Lambda GB-seconds (each step's
 *   measured duration × its configured memory), Lambda requests and DynamoDB lease writes, priced with
 *   functions/cost/prices.ts (us-east-1) for a 10-minute and a 1-minute schedule, per VM.
 * Durations are the simulator's on loopback: real pools answer slower, so the Lambda part is a floor.
 */
import { monthlyCost, type RunUsage } from '../functions/cost/estimate.js';
import { PRICES } from '../functions/cost/prices.js';
import type { StepHandler } from '../functions/handlers/steps.js';
import type { StepName } from '../functions/replication/contract.js';
import { STEP_MEMORY_MIB } from '../infra/step-sizing.js';
import { report } from '../test/support/figure.js';
import { MiB, startSites } from '../test/support/sites.js';

const VMS = 5;
const sites = await startSites({
  vms: Array.from({ length: VMS }, (_, i) => ({
    name_label: `vm-${i}`,
    disks: [
      { sizeBytes: 64 * MiB, data: [{ offset: 0, length: MiB, seed: i }] },
      { sizeBytes: 32 * MiB, data: [{ offset: 0, length: MiB, seed: 100 + i }] },
    ],
  })),
  job: { concurrency: 2 },
});
try {
  await sites.run();
  for (let i = 0; i < VMS; i++)
    for (const disk of sites.liveDisks(`vm-${i}`)) sites.source.test.writeVdi(disk, 0, Buffer.alloc(4096, 9));
  let transitions = 0;
  let gbSeconds = 0;
  let invocations = 0;
  const timed = (step: string, handler: StepHandler): StepHandler => {
    const gb = STEP_MEMORY_MIB[step as StepName] / 1024;
    return async (input) => {
      const started = performance.now();
      try {
        return await handler(input);
      } finally {
        invocations++;
        gbSeconds += ((performance.now() - started) / 1000) * gb;
      }
    };
  };
  const run = await sites.run(undefined, timed, (e) => {
    const type = (e as { type?: string }).type;
    if (type === 'StateEntered' || type === 'StateRetried') transitions++;
  });
  if (run.status !== 'succeeded' || run.vms.some((v) => v.kind !== 'delta'))
    throw new Error('delta run failed');
  // every invocation writes the lease once: lock-check's acquire, the renewals, finish-run's release
  const usage: RunUsage = {
    transitionsPerRun: transitions,
    lambdaGbSecondsPerRun: gbSeconds,
    lambdaRequestsPerRun: invocations,
    dynamoWritesPerRun: invocations,
  };
  report({
    name: 'cost.sfn_transitions_per_vm_run',
    value: Number((transitions / VMS).toFixed(2)),
    unit: 'transitions',
    baseline: `absolute: states entered (retries included) in the local execution history of a ${VMS}-VM, 2-disk delta run / ${VMS}`,
    lambdaGbSecondsPerVmRun: Number((gbSeconds / VMS).toFixed(3)),
    invocationsPerVmRun: invocations / VMS,
  });
  for (const [name, minutes] of [
    ['cost.usd_per_vm_month_10min', 10],
    ['cost.usd_per_vm_month_1min', 1],
  ] as const) {
    const cost = monthlyCost(usage, minutes);
    const part = (usd: number) => Number((usd / VMS).toFixed(4));
    report({
      name,
      value: part(cost.usd),
      unit: 'USD',
      baseline: `absolute: ${Math.round(cost.runsPerMonth)} runs a month at ${PRICES.region} list prices (functions/cost/prices.ts), measured on the simulator`,
      stepFunctions: part(cost.parts.stepFunctions),
      lambda: part(cost.parts.lambda),
      dynamodb: part(cost.parts.dynamodb),
      scheduler: part(cost.parts.scheduler),
    });
  }
} finally {
  await sites.close();
}
