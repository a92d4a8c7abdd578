/**
 * The synthesized workflow (the run, its batch and transfer child machines) through the local
 * runner with fake steps (test/support/workflow-fakes.ts: realistic payloads, the real run-store
 * code), measured per execution as AWS would write it:
 * - sfn.payload_bytes_max_5000vms: the largest state input/output over the run and every child
 *   execution of a 5,000-VM run (2 disks each), against the 16 KiB target (Step Functions: 256 KiB);
 * - sfn.history_events_max_5000vms: the largest single execution's history in that run, against the
 *   20,000-event target (Step Functions: 25,000);
 * - sfn.history_events_max_cbt_50tib: the same for one VM with one 50 TiB disk in cbt mode, every
 *   block changed, at the job's default cbtChunkMiB (stream-delta sends at most that per invocation).
 */
import { readFileSync } from 'node:fs';
import { synthesizeDefinitions } from '../cli/workflow-definitions.js';
import { parseConfig } from '../functions/config/load.js';
import { report } from '../test/support/figure.js';
import { measureRun } from '../test/support/history.js';

const PAYLOAD_TARGET = 16_384;
const HISTORY_TARGET = 20_000;
const VMS = 5_000;
const DISKS = 2;
const MiB = 2 ** 20;
const TiB = 2 ** 40;

const raw = JSON.parse(readFileSync(new URL('../xcr.config.example.json', import.meta.url), 'utf8'));
raw.jobs[0].concurrency = 40;
const config = parseConfig(raw);
const job = config.jobs[0]!;
const defs = synthesizeDefinitions(config).get(job.id)!;

const fleet = await measureRun(defs, job.id, { vmCount: VMS, disksPerVm: DISKS });
if (fleet.summary.succeeded !== VMS) throw new Error(`fleet run: ${JSON.stringify(fleet.summary)}`);
report({
  name: 'sfn.payload_bytes_max_5000vms',
  value: fleet.maxPayload,
  unit: 'bytes',
  baseline: `target ${PAYLOAD_TARGET} (Step Functions limit 262144)`,
  where: fleet.maxPayloadAt,
  executions: fleet.executions,
  withinTarget: fleet.maxPayload <= PAYLOAD_TARGET,
});
report({
  name: 'sfn.history_events_max_5000vms',
  value: fleet.maxHistory,
  unit: 'events',
  baseline: `target ${HISTORY_TARGET} (Step Functions cap 25000)`,
  disksPerVm: DISKS,
  execution: fleet.maxHistoryExecution,
  withinTarget: fleet.maxHistory <= HISTORY_TARGET,
  localRunnerMs: Math.round(fleet.ms),
});

const chunkBytes = job.cbtChunkMiB * MiB;
const cbt = await measureRun(defs, job.id, {
  vmCount: 1,
  disksPerVm: 1,
  cbt: { chunkBytes, diskBytes: 50 * TiB },
});
report({
  name: 'sfn.history_events_max_cbt_50tib',
  value: cbt.maxHistory,
  unit: 'events',
  baseline: `target ${HISTORY_TARGET} (Step Functions cap 25000)`,
  cbtChunkMiB: job.cbtChunkMiB,
  streamDeltaInvocations: cbt.counts.get('stream-delta'),
  executions: cbt.executions,
  withinTarget: cbt.maxHistory <= HISTORY_TARGET,
  localRunnerMs: Math.round(cbt.ms),
});
