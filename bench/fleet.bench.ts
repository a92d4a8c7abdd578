/**
 * fleet.makespan_ratio: 20 VMs × 2 disks with 10 % of their 2 MiB blocks holding data, replicated by
 * one run of the synthesized workflow in the local runner (the first run sends exactly the allocated
 * blocks: the same bytes as a 10 % delta), with every data connection of both simulated pools capped
 * at 50 MB/s and each host at 400 MB/s in all. Ideal makespan = bytes on the wire /
 * min(host cap, streams × stream cap), with streams = concurrency × diskStreams; the figure is ideal /
 * measured (1 = the caps are the only limit).
 * The two pools are the sites of test/support/sites.ts, each in a simulator process of its own
 * (sharing this process's one thread, the simulators saturated it: 0.27–0.36 before), with the caps
 * in their config (`limits`); the destination SR is of type "dummy" (like XenServer's DummySR: the
 * import parses and checks every byte but keeps none). Beside the figure: each simulator's CPU
 * seconds per GB, xcr's own CPU (this process), the mean number of disk streams open over the run,
 * each disk's rate and the time each step took in all. The workflow is synthesized before the clock
 * starts (deploy time on AWS). FLEET_VMS / FLEET_DISK_MIB shrink it to check the script;
 * FLEET_CONCURRENCY changes the job's concurrency (default 4, the issue's; the ideal uses it).
 * What limits it (2026-12-02, 2 cores, alone: 0.74–0.80, 13.4–14.6 s against 10.7 s; README "What limits
 * the figure below target" has the whole account): 7.1 of 8 streams open on average — each Map slot
 * spends ~0.27 s of ~2.7 s per VM in snapshot-previous and commit-or-rollback with its streams
 * closed, and 4 × 2 streams at exactly the host cap leave no stream to cover it; the VMs are alike,
 * so a wave of four reaches those steps together (0.6–1.2 s of a run with no stream open at all,
 * `secondsWithNoStream`) — and 45 MB/s per disk over its span (set-up, tail, and at exactly the cap
 * a stream that starts late cannot catch up). A timeline of each process's bytes/s and CPU with CPU
 * profiles showed the streams at 380–400 MB/s at both simulators within a wave and xcr's one thread
 * 83 % busy in the gaps with four VMs' XAPI calls (0.4–0.7 ms of CPU each here). Under load from
 * other work (2–6): 0.48–0.73.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinition } from '../cli/definition-cache.js';
import type { StepHandler } from '../functions/handlers/steps.js';
import { median, report } from '../test/support/figure.js';
import { localJob } from '../test/support/local-job.js';
import { startSimProcess } from '../test/support/sim-process.js';
import { MiB, siteSpecs } from '../test/support/sites.js';

const VMS = Number(process.env.FLEET_VMS ?? 20);
const DISK = Number(process.env.FLEET_DISK_MIB ?? 1024) * MiB;
const BLOCK = 2 * MiB;
const STREAM_CAP = 50e6;
const HOST_CAP = 400e6;
const CONCURRENCY = Number(process.env.FLEET_CONCURRENCY ?? 4);
const DISK_STREAMS = 2;

/** Every tenth 2 MiB block holds data (a shared fill buffer in the simulator: no memory per block). */
function tenPercent(seed: number) {
  const data = [];
  for (let b = seed % 10; b < DISK / BLOCK; b += 10)
    data.push({ offset: b * BLOCK, length: BLOCK, byte: (seed + b) % 255 || 1 });
  return data;
}

const vms = Array.from({ length: VMS }, (_, i) => ({
  name_label: `vm-${i}`,
  uuid: randomUUID(),
  disks: [
    { sizeBytes: DISK, data: tenPercent(2 * i) },
    { sizeBytes: DISK, data: tenPercent(2 * i + 1) },
  ],
}));
const specs = siteSpecs({ vms, replicaSrType: 'dummy', replicaSrBytes: 4 * VMS * DISK });
const limits = { streamBytesPerSecond: STREAM_CAP, hostBytesPerSecond: HOST_CAP };
const dir = mkdtempSync(join(tmpdir(), 'xcr-fleet-'));
const source = await startSimProcess(dir, 'source', { ...specs.source, limits });
const destination = await startSimProcess(dir, 'destination', { ...specs.destination, limits });
const local = localJob({
  source: source.pool,
  destination: destination.pool,
  vmUuids: vms.map((v) => v.uuid),
  job: { concurrency: CONCURRENCY, diskStreams: DISK_STREAMS },
});

/** Per step: invocations and seconds in all; per stream-delta: its span and disk count. */
const steps = new Map<string, { n: number; seconds: number }>();
const spans: { from: number; to: number; disks: number }[] = [];
const timed =
  (step: string, handler: StepHandler): StepHandler =>
  async (input) => {
    const from = performance.now();
    try {
      return await handler(input);
    } finally {
      const to = performance.now();
      const s = steps.get(step) ?? { n: 0, seconds: 0 };
      steps.set(step, { n: s.n + 1, seconds: s.seconds + (to - from) / 1000 });
      if (step === 'stream-delta') {
        const disks = (input as { disks?: { done?: boolean }[] }).disks?.filter((d) => !d.done).length ?? 0;
        spans.push({ from, to, disks: Math.min(disks, DISK_STREAMS) });
      }
    }
  };

const r2 = (x: number) => Number(x.toFixed(2));

/** Seconds of [from, to] during which no stream-delta invocation was running (the gaps between waves). */
function secondsWithNoStream(from: number, to: number): number {
  let idle = 0;
  let at = from;
  for (const s of [...spans].sort((a, b) => a.from - b.from)) {
    if (s.from > at) idle += s.from - at;
    at = Math.max(at, s.to);
  }
  return (idle + Math.max(0, to - at)) / 1000;
}

/** Each disk's transfer as stream-delta logs it: its rate, and its seconds beyond bytes / stream cap. */
function diskTransfers() {
  const disks = local.logs
    .filter((l) => l.message === 'disk transferred')
    .map((l) => ({ bytes: Number(l.bytes), mbps: Number(l.mbPerSecond) }));
  const rates = disks.map((d) => d.mbps).sort((a, b) => a - b);
  const over = disks.map((d) => d.bytes / 1e6 / d.mbps - d.bytes / STREAM_CAP);
  return {
    n: disks.length,
    mbps: { min: rates[0], median: median(rates), max: rates.at(-1) },
    meanSecondsOverCap: r2(over.reduce((a, b) => a + b, 0) / Math.max(1, over.length)),
  };
}

try {
  // synthesized before the clock starts (a deployment's job, not a run's; cached on disk after once)
  await loadDefinition(local.config, local.job);
  const [src0, dst0, xcr0] = [await source.cpuSeconds(), await destination.cpuSeconds(), process.cpuUsage()];
  const started = performance.now();
  const run = await local.run(undefined, timed);
  const ended = performance.now();
  const seconds = (ended - started) / 1000;
  const xcrCpu = process.cpuUsage(xcr0);
  const [srcCpu, dstCpu] = [(await source.cpuSeconds()) - src0, (await destination.cpuSeconds()) - dst0];
  if (run.status !== 'succeeded') throw new Error(`fleet run ${run.status}`);
  const streams = CONCURRENCY * DISK_STREAMS;
  const ideal = run.bytes / Math.min(HOST_CAP, streams * STREAM_CAP);
  const gb = run.bytes / 1e9;
  const streamSeconds = spans.reduce((t, s) => t + ((s.to - s.from) / 1000) * s.disks, 0);
  const firstStream = Math.min(...spans.map((s) => s.from));
  const lastStream = Math.max(...spans.map((s) => s.to));
  report({
    name: 'fleet.makespan_ratio',
    value: Number((ideal / seconds).toFixed(3)),
    unit: 'ratio',
    baseline: `ideal makespan ${ideal.toFixed(1)} s = ${run.bytes} bytes / min(host cap 400 MB/s, ${streams} streams × 50 MB/s); measured ${seconds.toFixed(1)} s for ${VMS} VMs × 2 disks of ${DISK / MiB} MiB, 10 % allocated, concurrency ${CONCURRENCY}, diskStreams ${DISK_STREAMS}; simulators in processes of their own, destination SR type dummy (parses and checks every byte, keeps none)`,
    measuredSeconds: r2(seconds),
    idealSeconds: r2(ideal),
    simCpuSecondsPerGB: { source: r2(srcCpu / gb), destination: r2(dstCpu / gb) },
    xcrCpuSeconds: { user: r2(xcrCpu.user / 1e6), system: r2(xcrCpu.system / 1e6) },
    xcrCpuSecondsPerGB: r2((xcrCpu.user + xcrCpu.system) / 1e6 / gb),
    // disk streams open on average between the run's start and end (the caps allow `streams`)
    meanOpenStreams: r2(streamSeconds / seconds),
    // before the first stream and after the last one: lock-check, the first snapshots; the last commits
    secondsBeforeFirstStream: r2((firstStream - started) / 1000),
    secondsAfterLastStream: r2((ended - lastStream) / 1000),
    // no stream-delta running at all: each wave of VMs snapshotting and committing at once
    secondsWithNoStream: r2(secondsWithNoStream(started, ended)),
    // each disk's own transfer as stream-delta logs it (the stream cap is 50 MB/s)
    disks: diskTransfers(),
    stepSeconds: Object.fromEntries([...steps].map(([k, v]) => [k, { n: v.n, seconds: r2(v.seconds) }])),
  });
} finally {
  source.stop();
  destination.stop();
  local.close();
  rmSync(dir, { recursive: true, force: true });
}
