/**
 * The synthesized workflow with 500 VMs (2 disks each) through the local runner, with fake steps
 * returning realistically sized payloads: the largest state input/output against the 256 KiB
 * limit, and the execution history size an AWS run would have against the 25,000-event cap.
 */
import { readFileSync } from 'node:fs';
import { runExecution, type StateEvent, synthesizeDefinitions } from '../cli/local-runner.js';
import { parseConfig } from '../functions/config/load.js';
import { report } from '../test/support/figure.js';
import { fakeHandlers } from '../test/support/workflow-fakes.js';

const PAYLOAD_LIMIT = 262_144;
const HISTORY_CAP = 25_000;
const VMS = 500;
const DISKS = 2;

const config = JSON.parse(readFileSync(new URL('../xcr.config.example.json', import.meta.url), 'utf8'));
config.jobs[0].concurrency = 40;
const definition = synthesizeDefinitions(parseConfig(config)).get(config.jobs[0].id)!;

async function measure(vmCount: number) {
  const { handlers } = fakeHandlers({ vmCount, disksPerVm: DISKS });
  let largest = 0;
  let largestAt = '';
  let tasks = 0;
  let others = 0;
  let iterations = 0;
  const onStateEvent = (e: StateEvent) => {
    if (e.type === 'MapIterationStarted' || e.type === 'MapIterationSucceeded') iterations++;
    if (!('state' in e)) return;
    if (e.type === 'StateEntered') {
      if (e.state.type === 'Task') tasks++;
      else others++;
    }
    for (const [k, v] of [
      ['input', e.state.input],
      ['output', e.state.output],
    ] as const) {
      if (v === undefined) continue;
      const n = Buffer.byteLength(JSON.stringify(v));
      if (n > largest) {
        largest = n;
        largestAt = `${e.state.name} ${k}`;
      }
    }
  };
  const t0 = performance.now();
  const r = await runExecution({
    definition,
    input: { jobId: config.jobs[0].id, scheduledTime: '2026-11-26T18:00:00Z' },
    executionName: `bench-${vmCount}`,
    handlers,
    retryIntervalMs: 0,
    onStateEvent,
  });
  if (r.status !== 'SUCCEEDED') throw new Error(`bench execution ${r.status}: ${JSON.stringify(r.error)}`);
  // AWS history: a Lambda task state writes 5 events (entered, scheduled, started, succeeded, exited),
  // other states 2, each Map iteration 2, plus the Map's own start/end and the execution's.
  const history = tasks * 5 + others * 2 + iterations + 4 + 2;
  return { largest, largestAt, history, ms: performance.now() - t0 };
}

const small = await measure(10);
const big = await measure(VMS);
report({
  name: 'sfn.payload_bytes_500vms',
  value: big.largest,
  unit: 'bytes',
  baseline: `Step Functions limit ${PAYLOAD_LIMIT}`,
  where: big.largestAt,
  fractionOfLimit: Number((big.largest / PAYLOAD_LIMIT).toFixed(3)),
});
report({
  name: 'sfn.payload_bytes_per_vm',
  value: Math.round((big.largest - small.largest) / (VMS - 10)),
  unit: 'bytes/VM',
  baseline: '10-VM run in the same process',
});
report({
  name: 'sfn.history_events_500vms_estimate',
  value: big.history,
  unit: 'events',
  baseline: `Step Functions history cap ${HISTORY_CAP}`,
  disksPerVm: DISKS,
  fractionOfCap: Number((big.history / HISTORY_CAP).toFixed(3)),
});
report({
  name: 'sfn.local_runner_ms_500vms',
  value: Math.round(big.ms),
  unit: 'ms',
  baseline: `10 VMs: ${Math.round(small.ms)} ms`,
});
